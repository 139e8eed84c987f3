"""Baselines beside SupSup (parameter superposition, BatchEnsemble, bounds): so far the PSP contexts."""

from supsup_core.baselines.contexts import (
    CONTEXT_KINDS,
    CONTEXT_STREAM,
    binary_context,
    complex_context,
    context_nbytes,
    rotation_context,
    task_context,
)

__all__ = [
    "CONTEXT_KINDS",
    "CONTEXT_STREAM",
    "binary_context",
    "complex_context",
    "context_nbytes",
    "rotation_context",
    "task_context",
]
