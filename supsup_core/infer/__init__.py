"""Inference: objectives, alpha-gradients over packed masks, task inference, GN evaluation and the NN scenario."""
from supsup_core.infer.gn_evaluation import (
    GN_SCENARIOS,
    GNConfig,
    GNResult,
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
from supsup_core.infer.nn_training import (
    NNCheck,
    NNConfig,
    NNResult,
    novelty,
    train_nn,
    train_nn_run,
)
from supsup_core.infer.objectives import OBJECTIVES, Objective, entropy, superfluous
from supsup_core.infer.packed_masks import (
    PackedMasks,
    packed_column_counts,
    packed_inner_products,
)

__all__ = ["AlphaGradient", "GNConfig", "GNResult", "GN_SCENARIOS", "INFERENCE", "NNCheck", "NNConfig", "NNResult", "OBJECTIVES", "Objective", "PackedMasks", "TaskInference", "alpha_gradient", "alpha_gradient_naive", "alpha_gradient_packed", "entropy", "evaluate_gn", "evaluate_run_gn", "infer_task_binary", "infer_task_oneshot", "novelty", "packed_column_counts", "packed_inner_products", "superfluous", "train_nn", "train_nn_run"]
