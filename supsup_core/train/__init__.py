"""Training: one supermask per task, continual runs, run directories, metrics and GG evaluation."""
from supsup_core.train.continual import (
    RunResult,
    check_compatible,
    train_run,
    transfer_scores,
)
from supsup_core.train.evaluation import EvaluationResult, evaluate_gg
from supsup_core.train.metrics import (
    average_accuracy,
    bwt,
    check_accuracy_matrix,
    forgetting_initial,
    forgetting_max,
    summarize,
)
from supsup_core.train.runs import (
    FORMAT_VERSION,
    MASK_FORMAT,
    RunBusyError,
    RunConfig,
    RunDirectory,
    TaskMasks,
)
from supsup_core.train.training import (
    OPTIMIZERS,
    TrainConfig,
    TrainResult,
    evaluate_task,
    evaluate_tasks,
    make_optimizer,
    optimizer_implementation,
    task_generator,
    train_task,
    uses_fused_rmsprop,
)

__all__ = ["EvaluationResult", "FORMAT_VERSION", "MASK_FORMAT", "OPTIMIZERS", "RunBusyError", "RunConfig", "RunDirectory", "RunResult", "TaskMasks", "TrainConfig", "TrainResult", "average_accuracy", "bwt", "check_accuracy_matrix", "check_compatible", "evaluate_gg", "evaluate_task", "evaluate_tasks", "forgetting_initial", "forgetting_max", "make_optimizer", "optimizer_implementation", "summarize", "task_generator", "train_run", "train_task", "transfer_scores", "uses_fused_rmsprop"]
