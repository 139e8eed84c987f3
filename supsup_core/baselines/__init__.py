"""Baselines beside SupSup (parameter superposition, BatchEnsemble, bounds): so far the PSP contexts and layers."""

from supsup_core.baselines.contexts import (
    CONTEXT_KINDS,
    CONTEXT_STREAM,
    binary_context,
    complex_context,
    context_nbytes,
    rotation_context,
    task_context,
)
from supsup_core.baselines.psp import PSPConv2d, PSPLinear

__all__ = [
    "CONTEXT_KINDS",
    "CONTEXT_STREAM",
    "PSPConv2d",
    "PSPLinear",
    "binary_context",
    "complex_context",
    "context_nbytes",
    "rotation_context",
    "task_context",
]
