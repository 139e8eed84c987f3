"""HopSupSup: encode a run's masks into a Hopfield memory, recover them, report, plot, the demo."""
from supsup_core.hopsupsup.demo import DemoConfig, DemoResult, run_demo
from supsup_core.hopsupsup.pipeline import (
    RECOVERY_METHODS,
    TaskRecovery,
    check_store_matches,
    check_store_of_run,
    check_store_path,
    encode_run,
    mask_layout,
    masked_accuracy,
    recover_task,
    recovery_batches,
)
from supsup_core.hopsupsup.plot import plot_recovery
from supsup_core.hopsupsup.report import RunRecovery, read_true_masks, recover_run

__all__ = ["DemoConfig", "DemoResult", "RECOVERY_METHODS", "RunRecovery", "TaskRecovery", "check_store_matches", "check_store_of_run", "check_store_path", "encode_run", "mask_layout", "masked_accuracy", "plot_recovery", "read_true_masks", "recover_run", "recover_task", "recovery_batches", "run_demo"]
