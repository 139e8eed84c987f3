"""The implicit backend: packed patterns plus a K×K coupling, giving the dense backend's fields without Ψ.

Ψ = Yᵀ A Y - diag(D), Y = X - m (see :mod:`hopfield_masks.rules`). A field costs two chunked passes over
the K·d/8 bytes of packed patterns; memory stays O(K·d/8 + K² + d) however large d is.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from hopfield_masks.checks import check_patterns, check_store_tensor
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.packed import PackedPatterns, packed_scratch_nbytes
from hopfield_masks.patterns import MaskLayout
from hopfield_masks.rules import LearningRule

__all__ = ["ImplicitMemory", "PackedMemory"]


class PackedMemory(HopfieldMemory):
    """Base of the backends that keep the stored patterns bit-packed."""

    backend = "implicit"

    def __init__(self, learning_rule: LearningRule, dim: int, *, layout: MaskLayout | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 max_bytes: int | None = None, run_digest: str | None = None) -> None:
        super().__init__(learning_rule, dim, layout=layout, device=device, dtype=dtype, max_bytes=max_bytes,
                         run_digest=run_digest)
        self._packed = PackedPatterns(dim, self._device)

    @property
    def packed_patterns(self) -> Tensor:
        """Stored patterns, uint8 (K, ceil(d/8)), bit order of :func:`pack_bits`."""
        return self._packed.packed

    def stored_patterns(self) -> Tensor:
        """Stored patterns unpacked to ±1, shape (K, d) (K·d floats: small sizes only)."""
        return self._packed.unpack(self._dtype)

    def find_stored(self, states: Tensor) -> Tensor:
        """Which stored pattern each ±1 state is: long (n,), the pattern's index, or -1 for none.

        A state equals pattern i exactly when their overlap is d; one chunked pass over the packed
        patterns, no unpacking of the whole store.
        """
        batch = check_patterns(states, self._dim, "states").to(device=self._device, dtype=torch.float64).reshape(-1, self._dim)
        equal = self._packed.overlaps(batch) == self._dim  # (n, K); exact in float64
        index = equal.to(torch.int8).argmax(-1)
        return torch.where(equal.any(-1), index, -1)

    def _state_tensors(self) -> dict[str, Tensor]:
        return {"packed_patterns": self._packed.packed}

    def _load_state(self, tensors: Mapping[str, Tensor], count: int, path: Any) -> None:
        super()._load_state(tensors, count, path)
        width = self._packed.packed.shape[1]
        packed = check_store_tensor(tensors, "packed_patterns", (count, width), torch.uint8, path)
        self._packed = PackedPatterns(self._dim, self._device, packed)


class ImplicitMemory(PackedMemory):
    """A quadratic-rule memory stored as packed patterns, a K×K Gram matrix G = X Xᵀ, the K×K coupling A
    and the d-vector D. Fields and energies equal the dense backend's to float tolerance.

    See :class:`HopfieldMemory` for the parameters.
    """

    def __init__(self, learning_rule: LearningRule, dim: int, *, layout: MaskLayout | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 max_bytes: int | None = None, run_digest: str | None = None) -> None:
        super().__init__(learning_rule, dim, layout=layout, device=device, dtype=dtype, max_bytes=max_bytes,
                         run_digest=run_digest)
        self._gram = torch.zeros(0, 0, dtype=torch.float64, device=self._device)  # G = X Xᵀ, exact integers
        self._coupling = torch.zeros(0, 0, dtype=torch.float64, device=self._device)  # A
        self._diagonal = torch.zeros(dim, dtype=dtype, device=self._device)  # D
        self._self_coupling: Tensor | None = None  # diag(Ψ), computed on demand

    @property
    def nbytes(self) -> int:
        tensors = [self._packed.packed, self._gram, self._coupling, self._diagonal, self._pattern_sum]
        return sum(t.numel() * t.element_size() for t in tensors)

    @classmethod
    def estimate_nbytes(cls, learning_rule: LearningRule, dim: int, count: int, dtype: torch.dtype = torch.float32) -> int:
        """Packed patterns (K·d/8), G and A (K² float64 each), D and the pattern sum (d each), and one
        chunk of unpacked patterns (at most 4 M floats) that every product works through."""
        itemsize = torch.empty(0, dtype=dtype).element_size()
        return (count * math.ceil(dim / 8) + 2 * count * count * 8 + dim * (itemsize + 4)
                + packed_scratch_nbytes(dim, count))

    def _store(self, patterns: Tensor) -> None:
        rule, count, d = self._rule, self._count, self._dim
        cross = self._packed.overlaps(patterns).double()  # (k, K) overlaps with the stored patterns
        within = (patterns @ patterns.T).double()  # integers, exact in float32 for d < 2**24
        gram = torch.cat([torch.cat([self._gram, cross.T], 1), torch.cat([cross, within], 1)], 0)
        coupling = rule.implicit_coupling(self._coupling, gram, count, d)
        self._packed.append(patterns)
        self._gram, self._coupling, self._self_coupling = gram, coupling, None
        if rule.diagonal == "constant":
            self._diagonal.fill_(rule.constant_diagonal(count + patterns.shape[0], d))
        elif rule.diagonal == "zero" and rule.coupling_is_diagonal:
            # the old block of A is unchanged, so only the new patterns add to diag(YᵀAY):
            # Σ_j a_j (x_j - m)² = (1 + m²) Σ_j a_j - 2m Σ_j a_j x_j for ±1 patterns x_j
            weights, m = coupling.diagonal()[count:].to(self._dtype), rule.centre
            self._diagonal += (1.0 + m * m) * weights.sum() - 2.0 * m * (weights @ patterns)
        elif rule.diagonal == "zero":
            self._diagonal = self._packed.quadratic_diagonal(coupling, rule.centre).to(self._dtype)

    def self_coupling(self) -> Tensor:
        """diag(Ψ), shape (d,): zero for zero-diagonal rules (one O(K²d) pass otherwise)."""
        if self._self_coupling is None:
            if self._rule.diagonal == "zero":
                self._self_coupling = torch.zeros_like(self._diagonal)
            else:
                full = self._packed.quadratic_diagonal(self._coupling, self._rule.centre).to(self._dtype)
                self._self_coupling = full - self._diagonal
        return self._self_coupling

    def weights(self) -> Tensor:
        centred = self._packed.unpack(torch.float64) - self._rule.centre
        psi = centred.T @ self._coupling @ centred - torch.diag(self._diagonal.double())
        return psi.to(self._dtype)

    def _overlaps(self, states: Tensor) -> Tensor:
        """Y s for states (n, d) -> (n, K)."""
        return self._packed.overlaps(states, self._rule.centre)

    def _field(self, states: Tensor) -> Tensor:
        coefficients = self._overlaps(states) @ self._coupling.to(self._dtype)
        return self._packed.combine(coefficients, self._rule.centre) - self._diagonal * states - self.threshold

    def _energy(self, states: Tensor) -> Tensor:
        overlaps = self._overlaps(states)
        quadratic = ((overlaps @ self._coupling.to(self._dtype)) * overlaps).sum(-1) - (self._diagonal * states**2).sum(-1)
        return -0.5 * quadratic + self.threshold * states.sum(-1)

    def _dynamics(self, states: Tensor) -> "_ImplicitDynamics":
        return _ImplicitDynamics(self, states)

    def _state_tensors(self) -> dict[str, Tensor]:
        return {**super()._state_tensors(), "gram": self._gram, "coupling": self._coupling, "diagonal": self._diagonal}

    def _load_state(self, tensors: Mapping[str, Tensor], count: int, path: Any) -> None:
        super()._load_state(tensors, count, path)
        self._gram = check_store_tensor(tensors, "gram", (count, count), torch.float64, path).to(self._device)
        self._coupling = check_store_tensor(tensors, "coupling", (count, count), torch.float64, path).to(self._device)
        self._diagonal = check_store_tensor(tensors, "diagonal", (self._dim,), self._dtype, path).to(self._device)


class _ImplicitDynamics:
    """Asynchronous-recall cache: A Y s (n, K), updated per flip in O(K² + nK)."""

    def __init__(self, memory: ImplicitMemory, states: Tensor) -> None:
        self._packed = memory._packed
        self._centre = memory.learning_rule.centre
        self._threshold = memory.threshold
        self._diagonal = memory._diagonal
        self._coupling = memory._coupling.to(memory.dtype)
        self._states = states  # the same tensor async_recall flips in place
        self._dtype = memory.dtype
        self._coupled = memory._overlaps(states) @ self._coupling  # A Y s, (n, K)
        self.self_coupling = memory.self_coupling()

    def _column(self, unit: int) -> Tensor:
        return self._packed.column(unit, self._dtype, self._centre)

    def field(self, unit: int) -> Tensor:
        own = self._diagonal[unit] * self._states[:, unit]
        return self._coupled @ self._column(unit) - own - self._threshold

    def flip(self, unit: int, delta: Tensor) -> None:
        self._coupled.addr_(delta, self._coupling @ self._column(unit))
