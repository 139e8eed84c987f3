"""Task inference without a task id: the gradient of an objective w.r.t. the superposition weights α.

With every masked layer using ``W ⊙ Σ_i α_i M_i`` and α uniform over a candidate set C, the input's task is
the mask whose weight the objective most wants to grow: ``argmax_i(−∂obj/∂α_i)`` (one-shot), or repeatedly
keep the half of the candidates with the largest ``−∂obj/∂α_i`` until one is left (binary).

Two ways to get ``∂obj/∂α`` give the same numbers:

- packed (:func:`alpha_gradient_packed`): put the superposed mask ``m`` in as a leaf tensor, one
  forward-backward pass gives ``g = ∂obj/∂m`` (autograd multiplies by W), and ``∂obj/∂α_i = ⟨g, M_i⟩`` for
  all i at once from the bit-packed masks. Memory: K·d/8 bytes plus one float mask.
- naive (:func:`alpha_gradient_naive`): the K float masks stacked, α a leaf, autograd through
  ``Σ_i α_i M_i``. Memory: K·d·4 bytes. Kept as the reference the packed path is tested against.

Ties go to the lower position in ``candidates`` in both procedures. On the packed path identical masks
get bitwise identical ``∂obj/∂α`` on every CPU (the products are exact sums, see
:func:`supsup_core.infer.packed_masks.packed_inner_products`), so of two copies of a mask the earlier one wins.
The naive reference makes no such promise: BLAS may sum identical rows in different orders, a few ulps
apart.

Either leaves the model's masked layers in "mask" or "superposition" mode; call
:func:`supsup_core.nn.modes.set_task` before using it for a task again.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from supsup_core.infer.packed_masks import PackedMasks, candidate_ids
from supsup_core.nn import modes

__all__ = [
    "AlphaGradient",
    "TaskInference",
    "alpha_gradient",
    "alpha_gradient_packed",
    "alpha_gradient_naive",
    "infer_task_oneshot",
    "infer_task_binary",
    "INFERENCE",
]

ObjectiveFn = Callable[[Tensor], Tensor]
# The K stored task masks to infer among: bit-packed, or the naive reference's float masks of shape
# (K, *mask_shape) by layer name.
StoredMasks = PackedMasks | Mapping[str, Tensor]


class AlphaGradient(NamedTuple):
    """``gradient[j] = ∂obj/∂α_{candidates[j]}`` at α uniform over ``candidates``; ``objective`` is obj there."""

    candidates: Tensor
    gradient: Tensor
    objective: float


class TaskInference(NamedTuple):
    """An inferred task: ``task_id``; ``rounds`` forward-backward passes; the last round's ``candidates``
    (shape (C,)) and their ``evidence`` (shape (C,), same order).

    ``evidence[j] = −∂obj/∂α_{candidates[j]}``, the negated α-gradient: how fast the objective falls as
    candidate j's weight in the superposition grows. Larger is more likely the input's task; the inferred
    task has the largest.
    """

    task_id: int
    rounds: int
    candidates: Tensor
    evidence: Tensor


def _num_masks(masks: StoredMasks) -> int:
    if isinstance(masks, PackedMasks):
        return masks.num_tasks
    counts = {int(m.shape[0]) for m in masks.values()}
    if len(counts) != 1:
        raise ValueError(f"every layer's float masks must stack the same number of tasks; got {sorted(counts)}.")
    return counts.pop()


def _candidate_ids(masks: StoredMasks, candidates: Sequence[int] | Tensor | None) -> Tensor:
    total = _num_masks(masks)
    if total == 0:
        raise ValueError("there are no task masks to infer among; train at least one task first.")
    return torch.arange(total) if candidates is None else candidate_ids(candidates, total)


def alpha_gradient_packed(model: nn.Module, x: Tensor, masks: PackedMasks, candidates: Tensor, objective: ObjectiveFn) -> AlphaGradient:
    """``∂obj/∂α`` over ``candidates`` from one forward-backward pass and one product with the packed masks.

    Parameters
    ----------
    model : nn.Module
        Its masked layers are named as in ``masks``; left in "mask" mode.
    x : Tensor of shape (N, ...)
        The input(s) whose task is inferred (one group shares one task).
    masks : PackedMasks
        On the model's device.
    candidates : Tensor of shape (C,), long
    objective : callable, logits (N, outputs) -> scalar

    Returns
    -------
    AlphaGradient
    """
    superposed = {name: m.requires_grad_(True) for name, m in masks.mean_mask(candidates).items()}
    modes.set_masks(model, superposed)
    with torch.enable_grad():
        value = objective(model(x))
        grads = torch.autograd.grad(value, list(superposed.values()))
    # ∂obj/∂α_i = Σ_layers ⟨∂obj/∂m, M_i⟩ because m = Σ_i α_i M_i is linear in α.
    gradient = masks.inner_products(dict(zip(superposed, grads)), candidates)
    return AlphaGradient(candidates, gradient, float(value.detach()))


def alpha_gradient_naive(model: nn.Module, x: Tensor, masks: Mapping[str, Tensor], candidates: Tensor, objective: ObjectiveFn) -> AlphaGradient:
    """The reference: ``∂obj/∂α`` by autograd through ``Σ_i α_i M_i`` with K float masks stacked.

    Parameters are as :func:`alpha_gradient_packed`, except ``masks``: float 0/1 tensors of shape
    ``(K, *mask_shape)`` by layer name (e.g. :meth:`PackedMasks.unpack`). Leaves the model in
    "superposition" mode.
    """
    total = _num_masks(masks)
    every = candidates.numel() == total and bool((candidates == torch.arange(total)).all())
    chosen = {name: m if every else m.index_select(0, candidates.to(m.device)) for name, m in masks.items()}
    device = next(iter(chosen.values())).device
    alphas = torch.full((candidates.numel(),), 1.0 / candidates.numel(), device=device, requires_grad=True)
    layers = modes.masked_layers(model)
    if set(layers) != set(chosen):
        raise ValueError(f"masks must name every masked layer exactly; got {sorted(chosen)}, the model has {sorted(layers)}.")
    for name, layer in layers.items():
        layer.set_superposition(alphas, chosen[name])
    with torch.enable_grad():
        value = objective(model(x))
        (gradient,) = torch.autograd.grad(value, [alphas])
    return AlphaGradient(candidates, gradient.float(), float(value.detach()))


def alpha_gradient(model: nn.Module, x: Tensor, masks: StoredMasks, candidates: Sequence[int] | Tensor | None,
                   objective: ObjectiveFn) -> AlphaGradient:
    """``∂obj/∂α`` at α uniform over ``candidates`` (default: every stored task).

    Packed masks take the packed path, a dict of float masks the naive one (see the module docstring).
    """
    ids = _candidate_ids(masks, candidates)
    if isinstance(masks, PackedMasks):
        return alpha_gradient_packed(model, x, masks, ids, objective)
    return alpha_gradient_naive(model, x, masks, ids, objective)


def _check_evidence(evidence: Tensor) -> None:
    if bool(torch.isnan(evidence).any()):
        raise ValueError(
            f"the task evidence −∂obj/∂α is NaN for {int(torch.isnan(evidence).sum())} of {evidence.numel()} candidates: "
            "the objective is not a number on these inputs. Check x for NaN or inf values."
        )


def _first_best(evidence: Tensor) -> int:
    """Position of the largest evidence, the lowest one among equals (on the CPU ``torch.argmax`` returns
    the first maximum; this does not depend on it)."""
    _check_evidence(evidence)
    return int(torch.nonzero(evidence == evidence.max())[0])


def infer_task_oneshot(model: nn.Module, x: Tensor, masks: StoredMasks, objective: ObjectiveFn,
                       candidates: Sequence[int] | Tensor | None = None) -> TaskInference:
    """One-shot inference: ``argmax_i(−∂obj/∂α_i)`` over the candidates (ties: lower position).

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (N, ...)
        One group of inputs assumed to share a task (N = 1 for single-image inference).
    masks : PackedMasks or dict of str to Tensor of shape (K, *mask_shape)
    objective : callable, logits -> scalar (e.g. :class:`supsup_core.infer.objectives.Objective`)
    candidates : sequence of int, optional
        Task ids to choose among (the learned tasks only); default every stored task. Never include
        unlearned masks.

    Returns
    -------
    TaskInference with ``rounds = 1``.
    """
    result = alpha_gradient(model, x, masks, candidates, objective)
    evidence = -result.gradient
    best = _first_best(evidence.cpu())
    return TaskInference(int(result.candidates[best]), 1, result.candidates, evidence)


def infer_task_binary(model: nn.Module, x: Tensor, masks: StoredMasks, objective: ObjectiveFn,
                      candidates: Sequence[int] | Tensor | None = None) -> TaskInference:
    """Binary inference: keep the half with the largest ``−∂obj/∂α`` (ties: lower position), renormalise, repeat.

    Each round recomputes the gradient at α uniform over the remaining candidates and keeps
    ``ceil(C / 2)`` of them, so it ends after ``ceil(log2 C)`` rounds and the answer is always the one
    candidate left (never a stale earlier guess). Parameters as :func:`infer_task_oneshot`.

    Returns
    -------
    TaskInference with ``rounds = ceil(log2 C)`` (0 when only one candidate was given).
    """
    remaining = _candidate_ids(masks, candidates)
    rounds, evidence, last = 0, torch.zeros(1), remaining
    while remaining.numel() > 1:
        result = alpha_gradient(model, x, masks, remaining, objective)
        last, evidence = remaining, -result.gradient.cpu()
        _check_evidence(evidence)
        keep = math.ceil(remaining.numel() / 2)
        # A stable sort keeps equal evidence in candidate order, so ties keep the lower position (topk
        # promises no order among equals).
        order = torch.sort(evidence, descending=True, stable=True).indices[:keep]
        remaining = remaining[torch.sort(order).values]  # keep candidates in their original order
        rounds += 1
    return TaskInference(int(remaining[0]), rounds, last, evidence)


# Explicit registry: inference name -> function(model, x, masks, objective, candidates) -> TaskInference.
INFERENCE: dict[str, Callable[..., TaskInference]] = {
    "oneshot": infer_task_oneshot,
    "binary": infer_task_binary,
}
