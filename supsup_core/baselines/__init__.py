"""Baselines beside SupSup: parameter superposition, BatchEnsemble, and the fine-tuning and separate-model bounds."""

from supsup_core.baselines.batchensemble import (
    BatchEnsemble,
    BatchEnsembleLinear,
    sign_init,
)
from supsup_core.baselines.bounds import (
    FineTune,
    FineTuneMultiHead,
    Separate,
    TaskLinear,
    plain_linear,
)
from supsup_core.baselines.contexts import (
    CONTEXT_KINDS,
    CONTEXT_STREAM,
    binary_context,
    complex_context,
    context_nbytes,
    rotation_context,
    task_context,
)
from supsup_core.baselines.fc import FCStack, build_fc_stack
from supsup_core.baselines.psp import PSPConv2d, PSPLinear
from supsup_core.baselines.psp_methods import (
    PSP,
    PSPBinary,
    PSPComplex,
    PSPRotation,
    psp_layers,
)

__all__ = [
    "BatchEnsemble",
    "BatchEnsembleLinear",
    "CONTEXT_KINDS",
    "CONTEXT_STREAM",
    "FCStack",
    "FineTune",
    "FineTuneMultiHead",
    "PSP",
    "PSPBinary",
    "PSPComplex",
    "PSPConv2d",
    "PSPLinear",
    "PSPRotation",
    "Separate",
    "TaskLinear",
    "binary_context",
    "build_fc_stack",
    "complex_context",
    "context_nbytes",
    "plain_linear",
    "psp_layers",
    "rotation_context",
    "sign_init",
    "task_context",
]
