"""Networks: supermasks, masked layers, models and ResNets, layer modes, the task-module protocol, the fused optimizer."""

from supsup_core.nn.fused import FusedRMSprop, MaskSink, kernels_available
from supsup_core.nn.layers import (
    FixedLinear,
    MaskedBatchNorm,
    MaskedConv2d,
    MaskedLayer,
    MaskedLinear,
)
from supsup_core.nn.method import Method, SupSup
from supsup_core.nn.models import (
    DEFAULT_WIDTHS,
    MODELS,
    BNNet,
    FCNet,
    ModelConfig,
    build_model,
)
from supsup_core.nn.modes import (
    add_task,
    freeze_task,
    masked_layers,
    num_tasks,
    other_task_modules,
    set_masks,
    set_superposition,
    set_task,
    task_masks,
    task_parameters,
)
from supsup_core.nn.resnets import ResNet18, ResNet50, TaskBatchNorm2d
from supsup_core.nn.supermask import (
    MASK_KINDS,
    SCORE_INITS,
    MaskConfig,
    TopKCut,
    binary_mask,
    compute_mask,
    init_scores_,
    signed_constant_,
    threshold_mask,
    topk_mask,
)
from supsup_core.nn.task_modules import TaskModule, task_modules

__all__ = [
    "BNNet",
    "DEFAULT_WIDTHS",
    "FCNet",
    "FixedLinear",
    "FusedRMSprop",
    "MASK_KINDS",
    "MODELS",
    "MaskConfig",
    "MaskSink",
    "MaskedBatchNorm",
    "MaskedConv2d",
    "MaskedLayer",
    "MaskedLinear",
    "Method",
    "ModelConfig",
    "ResNet18",
    "ResNet50",
    "SCORE_INITS",
    "SupSup",
    "TaskBatchNorm2d",
    "TaskModule",
    "TopKCut",
    "add_task",
    "binary_mask",
    "build_model",
    "compute_mask",
    "freeze_task",
    "init_scores_",
    "kernels_available",
    "masked_layers",
    "num_tasks",
    "other_task_modules",
    "set_masks",
    "set_superposition",
    "set_task",
    "signed_constant_",
    "task_masks",
    "task_modules",
    "task_parameters",
    "threshold_mask",
    "topk_mask",
]
