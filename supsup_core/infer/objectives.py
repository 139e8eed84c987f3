"""Task-inference objectives on a model's logits: output entropy H and the superfluous-neuron objective G.

Both are scalars whose gradient with respect to the superposition weights α points to the task the input
belongs to: the right mask makes the output confident (low H) and pushes the superfluous logits down (low
G), so the task is ``argmax_i(−∂obj/∂α_i)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from supsup_core.checks import check_choice, check_output_size, check_positive

__all__ = ["entropy", "superfluous", "Objective", "OBJECTIVES"]


def entropy(logits: torch.Tensor, real_outputs: int) -> torch.Tensor:
    """Mean output entropy ``H = −Σ_j p_j log p_j`` over the first ``real_outputs`` logits.

    Parameters
    ----------
    logits : Tensor of shape (N, n_outputs)
    real_outputs : int
        Number of outputs that are classes; extra (superfluous) outputs are left out of the softmax.

    Returns
    -------
    Tensor of shape (), the entropy averaged over the batch
    """
    real = logits[:, :real_outputs]
    log_p = real.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def superfluous(logits: torch.Tensor, real_outputs: int) -> torch.Tensor:
    """Superfluous-neuron objective ``G = logsumexp(logits)`` with the first ``real_outputs`` logits detached.

    Training with cross-entropy over all outputs (labels among the first ``real_outputs``) teaches a task's
    mask to push the extra logits down; ``G`` only lets the gradient through those extra logits.

    Parameters
    ----------
    logits : Tensor of shape (N, n_outputs) with n_outputs > real_outputs
    real_outputs : int

    Returns
    -------
    Tensor of shape (), ``G`` averaged over the batch
    """
    mixed = torch.cat([logits[:, :real_outputs].detach(), logits[:, real_outputs:]], dim=1)
    return torch.logsumexp(mixed, dim=1).mean()


# Explicit registry: objective name -> function(logits, real_outputs) -> scalar.
OBJECTIVES: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "entropy": entropy,
    "superfluous": superfluous,
}


@dataclass(frozen=True)
class Objective:
    """A named task-inference objective bound to the number of real (class) outputs.

    Parameters
    ----------
    name : {"entropy", "superfluous"}
        Key of :data:`OBJECTIVES`.
    real_outputs : int
        Number of class outputs; the model's other outputs are superfluous. ``"superfluous"`` needs the
        model to have more outputs than this.
    """

    name: str = "entropy"
    real_outputs: int = 10

    def __post_init__(self) -> None:
        check_choice(self.name, "objective", OBJECTIVES, fix="Pass --objective entropy or --objective superfluous.")
        check_positive(self.real_outputs, "real_outputs", fix="It is the number of classes, e.g. 10 for MNIST.")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """The objective on ``logits`` of shape (N, n_outputs): a scalar tensor."""
        check_output_size(int(logits.shape[1]), self.real_outputs, needs_extra=self.name == "superfluous")
        return OBJECTIVES[self.name](logits, self.real_outputs)
