"""Training: one supermask (or a baseline's state) per task, continual runs, run directories, metrics, GG evaluation, comparison."""

from supsup_core.train.compare import ComparisonRow, compare_runs
from supsup_core.train.continual import RunResult, check_compatible, train_run
from supsup_core.train.evaluation import EvaluationResult, evaluate_gg
from supsup_core.train.methods import METHODS, get_method, method_train_config
from supsup_core.train.metrics import (
    average_accuracy,
    bwt,
    check_accuracy_matrix,
    forgetting_initial,
    forgetting_max,
    fwt,
    summarize,
)
from supsup_core.train.results import RESULTS_SCHEMA_VERSION, RunResults, TaskRecord
from supsup_core.train.run_lock import RunBusyError
from supsup_core.train.runs import (
    FORMAT_VERSION,
    MASK_FORMAT,
    READS_FORMATS,
    RunConfig,
    RunDirectory,
)
from supsup_core.train.shared_state import SharedState
from supsup_core.train.task_state import (
    TaskState,
    task_state_from_tensors,
    task_state_tensors,
)
from supsup_core.train.training import (
    DEFAULT_ITERATIONS,
    OPTIMIZERS,
    TrainConfig,
    TrainResult,
    evaluate_task,
    evaluate_tasks,
    make_optimizer,
    make_shared_optimizer,
    optimizer_implementation,
    task_generator,
    train_task,
    uses_fused_rmsprop,
)

__all__ = [
    "ComparisonRow",
    "DEFAULT_ITERATIONS",
    "EvaluationResult",
    "FORMAT_VERSION",
    "MASK_FORMAT",
    "METHODS",
    "OPTIMIZERS",
    "READS_FORMATS",
    "RESULTS_SCHEMA_VERSION",
    "RunBusyError",
    "RunConfig",
    "RunDirectory",
    "RunResult",
    "RunResults",
    "SharedState",
    "TaskRecord",
    "TaskState",
    "TrainConfig",
    "TrainResult",
    "average_accuracy",
    "bwt",
    "check_accuracy_matrix",
    "check_compatible",
    "compare_runs",
    "evaluate_gg",
    "evaluate_task",
    "evaluate_tasks",
    "forgetting_initial",
    "forgetting_max",
    "fwt",
    "get_method",
    "make_optimizer",
    "make_shared_optimizer",
    "method_train_config",
    "optimizer_implementation",
    "summarize",
    "task_generator",
    "task_state_from_tensors",
    "task_state_tensors",
    "train_run",
    "train_task",
    "uses_fused_rmsprop",
]
