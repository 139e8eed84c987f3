"""Supermask functions: binary masks from real-valued scores with a straight-through gradient, and inits."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from supsup_core.checks import check_finite

__all__ = [
    "MaskConfig",
    "TopKCut",
    "topk_mask",
    "threshold_mask",
    "compute_mask",
    "binary_mask",
    "signed_constant_",
    "init_scores_",
    "MASK_KINDS",
    "SCORE_INITS",
]

MASK_KINDS = ("topk", "threshold")
SCORE_INITS = ("kaiming_uniform", "zeros")


@dataclass(frozen=True)
class MaskConfig:
    """How a layer turns its scores into a binary mask.

    Parameters
    ----------
    kind : {"topk", "threshold"}
        ``"topk"`` keeps the ``density`` fraction of entries with the largest score magnitude (EdgePopup);
        ``"threshold"`` keeps entries whose score is >= 0 (SupSup's fast masks, and neuron masks).
    density : float
        Fraction of entries kept by ``"topk"`` (0 < density <= 1): the mask's fraction of ones, which the
        reference code calls ``sparsity``. Ignored by ``"threshold"``.
    score_init : {"kaiming_uniform", "zeros"}
        Initial scores of a new task.
    """

    kind: str = "topk"
    density: float = 0.5
    score_init: str = "kaiming_uniform"

    def __post_init__(self) -> None:
        if self.kind not in MASK_KINDS:
            raise ValueError(f"mask kind must be one of {MASK_KINDS}; got {self.kind!r}.")
        check_finite(self.density, "density", "Use e.g. 0.5 to keep half of the weights.")
        if not (0.0 < self.density <= 1.0):
            raise ValueError(
                f"density is the fraction of weights kept and must lie in (0, 1]; got {self.density}. "
                "Use e.g. 0.5 to keep half of the weights."
            )
        if self.score_init not in SCORE_INITS:
            raise ValueError(f"score_init must be one of {SCORE_INITS}; got {self.score_init!r}.")
        if self.kind == "topk" and self.score_init == "zeros":
            # every score ties at the cut, so the mask is empty, the output zero and every gradient zero
            raise ValueError(
                "top-k masks cannot start from zero scores: all scores tie, the mask keeps nothing and never "
                "trains. Use score_init='kaiming_uniform' (--score-init kaiming_uniform) or threshold masks (--mask threshold)."
            )


class TopKCut:
    """Memory of a top-k mask's last cut, so the next one is found near it rather than from scratch.

    Training moves scores a little per step, so the new cut lies close to the old one. With a
    ``TopKCut`` the k-th smallest magnitude is selected among the few entries of a narrow band around
    the old cut (two counting passes and one small selection) instead of ``kthvalue`` over every entry,
    which costs about nine times a counting pass on a CPU. The result is exactly the same. CPU tensors
    only: elsewhere the full ``kthvalue`` runs (the counts would each wait for the device).
    """

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None  # the last cut (0-dim tensor)
        self.width = 0.0  # half-width of the band that found it


def _kth_smallest(values: torch.Tensor, k: int, cut: TopKCut | None) -> torch.Tensor:
    """The k-th smallest (1-based) of the flat ``values``, as ``kthvalue``; near ``cut.value`` when known."""
    # CPU only: on a GPU the counts would each wait for the device, and kthvalue does not
    if cut is not None and cut.value is not None and values.device.type == "cpu":
        n, centre = values.numel(), cut.value.to(values.device)
        width = cut.width or 1e-3 * float(centre.abs()) + 1e-12
        for _ in range(6):
            low, high = centre - width, centre + width
            below, upto = int((values <= low).sum()), int((values <= high).sum())
            if not below < k <= upto:  # the k-th smallest lies outside the band: widen it
                width *= 8
            elif upto - below > max(n // 16, 1):  # holds it, but too many entries to be worth it: narrow it
                width /= 8
            else:
                band = values[(values > low) & (values <= high)]
                cut.value = band.kthvalue(k - below).values
                cut.width = width / 2 if upto - below > n // 256 else width  # keep the next band small
                return cut.value
    result = values.kthvalue(k).values
    if cut is not None:
        cut.value, cut.width = result, 0.0
    return result


def _topk_into(scores: torch.Tensor, density: float, out: torch.Tensor, cut: TopKCut | None = None) -> torch.Tensor:
    magnitude = scores.abs()
    n_keep = max(1, int(round(density * magnitude.numel())))
    if n_keep >= magnitude.numel():
        return out.fill_(1)
    # the (n - n_keep)-th smallest is the largest magnitude that is dropped
    threshold = _kth_smallest(magnitude.flatten(), magnitude.numel() - n_keep, cut)
    return torch.gt(magnitude, threshold, out=out)


class _TopK(torch.autograd.Function):
    """Top-k by magnitude in the forward pass, identity (straight-through) in the backward pass."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, density: float, cut: TopKCut | None) -> torch.Tensor:
        return _topk_into(scores.detach(), density, torch.empty_like(scores), cut)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, None, None


class _Threshold(torch.autograd.Function):
    """``scores >= 0`` in the forward pass, identity (straight-through) in the backward pass."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        return torch.ge(scores.detach(), 0, out=torch.empty_like(scores))  # no bool tensor, no cast

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output


def topk_mask(scores: torch.Tensor, density: float, cut: TopKCut | None = None) -> torch.Tensor:
    """Binary mask keeping the ``density`` fraction of entries with the largest ``|scores|``.

    Ties at the cut are dropped, so at most ``round(density * n)`` entries are kept. The gradient
    passes straight through to ``scores``.

    Parameters
    ----------
    scores : Tensor of any shape
    density : float in (0, 1], the fraction kept
    cut : TopKCut, optional
        The last cut of these scores, to find the new one faster (same result); updated in place.

    Returns
    -------
    Tensor of the same shape and dtype, holding 0.0 and 1.0
    """
    return _TopK.apply(scores, density, cut)


def threshold_mask(scores: torch.Tensor) -> torch.Tensor:
    """Binary mask ``scores >= 0`` with a straight-through gradient (same shape and dtype)."""
    return _Threshold.apply(scores)


def compute_mask(scores: torch.Tensor, config: MaskConfig, cut: TopKCut | None = None) -> torch.Tensor:
    """The mask ``config`` asks for, computed from ``scores`` (straight-through gradient).

    ``cut`` (top-k only) remembers the last cut of these scores; see :class:`TopKCut`.
    """
    if config.kind == "topk":
        return topk_mask(scores, config.density, cut)
    return threshold_mask(scores)


@torch.no_grad()
def binary_mask(scores: torch.Tensor, config: MaskConfig, *, out: torch.Tensor | None = None,
                cut: TopKCut | None = None) -> torch.Tensor:
    """The mask ``config`` asks for, as 0.0/1.0 in the scores' dtype, without any gradient.

    The fused training paths use it (they apply the straight-through gradient themselves). Written
    straight into ``out`` (same shape, a float dtype) when given: no boolean tensor and no copy.
    ``cut`` as in :func:`compute_mask`.
    """
    out = torch.empty_like(scores) if out is None else out
    if config.kind == "topk":
        return _topk_into(scores, config.density, out, cut)
    return torch.ge(scores, 0, out=out)


def _fan_in(shape: tuple[int, ...]) -> int:
    # (out, in) for linear, (out, in, kh, kw) for conv
    return int(math.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


@torch.no_grad()
def signed_constant_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``weight`` in place with ±sqrt(2 / fan_in), signs uniformly at random (SupSup's init)."""
    std = math.sqrt(2.0 / _fan_in(tuple(weight.shape)))
    signs = torch.randint(0, 2, weight.shape, generator=generator, device=weight.device if generator is None else generator.device)
    weight.copy_((signs.to(weight.dtype) * 2 - 1).to(weight.device) * std)
    return weight


@torch.no_grad()
def init_scores_(scores: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Initialise a task's scores in place: Kaiming-uniform (a = sqrt(5), as nn.Linear) or zeros."""
    if kind == "zeros" or scores.dim() < 2:
        if kind == "kaiming_uniform":
            bound = 1.0 / math.sqrt(scores.numel())
            return scores.uniform_(-bound, bound, generator=generator)
        return scores.zero_()
    # kaiming_uniform_ with a = sqrt(5): bound = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in)
    bound = 1.0 / math.sqrt(_fan_in(tuple(scores.shape)))
    return scores.uniform_(-bound, bound, generator=generator)
