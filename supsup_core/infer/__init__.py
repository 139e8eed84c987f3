"""Inference: objectives, alpha-gradients over packed masks, task inference, GN evaluation and the NN scenario."""

from supsup_core.infer.gn_evaluation import (
    EVALUATION_SCENARIOS,
    GN_OPTIONS,
    GN_SCENARIOS,
    GNConfig,
    GNResult,
    check_scenario_options,
    evaluate_gn,
    evaluate_run_gn,
)
from supsup_core.infer.inference import (
    INFERENCE,
    AlphaGradient,
    TaskInference,
    alpha_gradient,
    alpha_gradient_naive,
    alpha_gradient_packed,
    infer_task_binary,
    infer_task_oneshot,
)
from supsup_core.infer.nn_results import NNCheck, NNRunResults
from supsup_core.infer.nn_training import (
    NNConfig,
    NNResult,
    default_nn_evaluation,
    novelty,
    train_nn,
    train_nn_run,
)
from supsup_core.infer.objectives import OBJECTIVES, Objective, entropy, superfluous
from supsup_core.infer.packed_masks import (
    PackedMasks,
    candidate_ids,
    packed_column_counts,
    packed_inner_products,
)

__all__ = [
    "AlphaGradient",
    "EVALUATION_SCENARIOS",
    "GNConfig",
    "GNResult",
    "GN_OPTIONS",
    "GN_SCENARIOS",
    "INFERENCE",
    "NNCheck",
    "NNConfig",
    "NNResult",
    "NNRunResults",
    "OBJECTIVES",
    "Objective",
    "PackedMasks",
    "TaskInference",
    "alpha_gradient",
    "alpha_gradient_naive",
    "alpha_gradient_packed",
    "candidate_ids",
    "check_scenario_options",
    "default_nn_evaluation",
    "entropy",
    "evaluate_gn",
    "evaluate_run_gn",
    "infer_task_binary",
    "infer_task_oneshot",
    "novelty",
    "packed_column_counts",
    "packed_inner_products",
    "superfluous",
    "train_nn",
    "train_nn_run",
]
