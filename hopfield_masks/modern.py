"""Modern (softmax) Hopfield memory over packed patterns: retrieval by a softmax read-out with β."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from hopfield_masks.functional import softmax_energy, softmax_field
from hopfield_masks.implicit import PackedMemory
from hopfield_masks.packed import packed_scratch_nbytes
from hopfield_masks.rules import LearningRule

__all__ = ["ModernMemory"]


class ModernMemory(PackedMemory):
    """Dense-associative ("modern") memory: E(s) = -(1/β) log Σ_μ exp(β x_μ·s), h = Xᵀ softmax(β X s).

    Along any single unit the energy is concave, so an asynchronous flip against the field lowers it.
    Keeps only the packed patterns (K·d/8 bytes). The backend registry holds it as the "modern" rule's
    "implicit" backend (its store files say ``"backend": "implicit"``). See :class:`HopfieldMemory` for the
    parameters.
    """

    @property
    def beta(self) -> float:
        """Inverse temperature on raw overlaps."""
        return self._rule.beta

    @property
    def nbytes(self) -> int:
        return self._packed.nbytes + self._pattern_sum.numel() * self._pattern_sum.element_size()

    @classmethod
    def estimate_nbytes(cls, learning_rule: LearningRule, dim: int, count: int, dtype: torch.dtype = torch.float32) -> int:
        """Packed patterns (K·d/8), the pattern sum (d floats) and one chunk of unpacked patterns."""
        return count * math.ceil(dim / 8) + dim * 4 + packed_scratch_nbytes(dim, count)

    def readout(self, states: Tensor) -> Tensor:
        """Softmax read-out weights over the stored patterns.

        Parameters
        ----------
        states : Tensor of shape (d,) or (n, d), float

        Returns
        -------
        Tensor of shape (K,) or (n, K): ``softmax(β X s)``, which pattern each state retrieves.
        """
        batch = self._as_batch(states)
        return softmax_field(self._packed.overlaps(batch), self.beta).reshape(*states.shape[:-1], -1)

    def weights(self) -> Tensor:
        raise ValueError("the modern rule has no d×d matrix Ψ; use field(), energy() or readout().")

    def _store(self, patterns: Tensor) -> None:
        self._packed.append(patterns)

    def _field(self, states: Tensor) -> Tensor:
        return self._packed.combine(softmax_field(self._packed.overlaps(states), self.beta))

    def _energy(self, states: Tensor) -> Tensor:
        return softmax_energy(self._packed.overlaps(states), self.beta)

    def _dynamics(self, states: Tensor) -> "_ModernDynamics":
        return _ModernDynamics(self, states)


class _ModernDynamics:
    """Asynchronous-recall cache: overlaps X s (n, K), updated per flip in O(nK)."""

    def __init__(self, memory: ModernMemory, states: Tensor) -> None:
        self._packed = memory._packed
        self._beta = memory.beta
        self._dtype = memory.dtype
        self._overlaps = memory._packed.overlaps(states)
        self._weights: Tensor | None = None  # softmax of the overlaps, refreshed after a flip
        self.self_coupling = torch.zeros(memory.dim, dtype=memory.dtype, device=memory.device)

    def field(self, unit: int) -> Tensor:
        if self._weights is None:
            self._weights = softmax_field(self._overlaps, self._beta)
        return self._weights @ self._packed.column(unit, self._dtype)

    def flip(self, unit: int, delta: Tensor) -> None:
        self._overlaps.addr_(delta, self._packed.column(unit, self._dtype))
        self._weights = None
