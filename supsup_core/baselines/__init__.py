"""Baselines beside SupSup (parameter superposition, BatchEnsemble, bounds): so far the PSP contexts and linear layer."""

from supsup_core.baselines.contexts import (
    CONTEXT_KINDS,
    CONTEXT_STREAM,
    binary_context,
    complex_context,
    context_nbytes,
    rotation_context,
    task_context,
)
from supsup_core.baselines.psp import PSPLinear

__all__ = [
    "CONTEXT_KINDS",
    "CONTEXT_STREAM",
    "PSPLinear",
    "binary_context",
    "complex_context",
    "context_nbytes",
    "rotation_context",
    "task_context",
]
