"""Task inference by exhaustive search: every learned task is tried on the images, the lowest mean output
entropy wins (BatchEnsemble's task inference in the SupSup reference code, ``se_be_adapt``).

The reference repeats each image once per task in one batch; trying the tasks one after the other computes
the same entropies with K forward passes of the group. It costs K forward passes per inference, where
SupSup's superposition needs one forward and one backward pass for any K.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from supsup_core.nn import modes

__all__ = ["ExhaustiveInference", "infer_task_exhaustive"]


class ExhaustiveInference(NamedTuple):
    """The inferred task and the mean entropy of every candidate, shape ``(K,)``, in ``task_ids`` order."""

    task_id: int
    entropies: Tensor


@torch.no_grad()
def infer_task_exhaustive(model: nn.Module, x: Tensor, task_ids: Sequence[int], *, real_outputs: int) -> ExhaustiveInference:
    """The task among ``task_ids`` whose state gives the images ``x`` (N, ...) the lowest mean entropy over the
    first ``real_outputs`` outputs (the earliest of ``task_ids`` on an exact tie)."""
    if len(task_ids) == 0:
        raise ValueError("no candidate tasks to infer from; train at least one task first.")
    model.eval()
    entropies = []
    for task_id in task_ids:
        modes.set_task(model, task_id)
        log_p = torch.log_softmax(model(x)[:, :real_outputs].float(), dim=1)
        entropies.append(-(log_p.exp() * log_p).sum(1).mean())
    entropies = torch.stack(entropies)
    return ExhaustiveInference(int(task_ids[int(torch.argmin(entropies))]), entropies)
