"""HopSupSup: encode a run's masks into a Hopfield memory, recover them, report, plot, the demo."""

from supsup_core.hopsupsup.demo import DemoConfig, DemoResult, run_demo
from supsup_core.hopsupsup.encode import (
    check_store_matches,
    check_store_of_run,
    check_store_path,
    encode_run,
    mask_layout,
    packed_mask_nbytes,
)
from supsup_core.hopsupsup.methods import (
    RECOVERY_METHODS,
    Descent,
    MethodConfig,
    RecoveryMethod,
    recovery_config,
)
from supsup_core.hopsupsup.plot import plot_recovery
from supsup_core.hopsupsup.recover import (
    RECOVERY_STREAM,
    TaskRecovery,
    masked_accuracy,
    recover_task,
    recovery_batches,
)
from supsup_core.hopsupsup.report import (
    RunRecovery,
    TaskReport,
    read_true_masks,
    recover_run,
)

__all__ = [
    "DemoConfig",
    "DemoResult",
    "Descent",
    "MethodConfig",
    "RECOVERY_METHODS",
    "RECOVERY_STREAM",
    "RecoveryMethod",
    "RunRecovery",
    "TaskRecovery",
    "TaskReport",
    "check_store_matches",
    "check_store_of_run",
    "check_store_path",
    "encode_run",
    "mask_layout",
    "masked_accuracy",
    "packed_mask_nbytes",
    "plot_recovery",
    "read_true_masks",
    "recover_run",
    "recover_task",
    "recovery_batches",
    "recovery_config",
    "run_demo",
]
