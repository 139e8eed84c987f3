"""The dense backend: one d×d matrix Ψ, the same size however many patterns it holds."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from hopfield_masks.checks import check_store_tensor
from hopfield_masks.functional import quadratic_energy, quadratic_field
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.patterns import MaskLayout
from hopfield_masks.rules import LearningRule

__all__ = ["DenseMemory"]


class DenseMemory(HopfieldMemory):
    """A memory holding Ψ as a dense (d, d) matrix; the stored patterns themselves are not kept.

    Costs d² floats (16.8 MB at d = 2048 in float32) whatever the number of patterns.
    See :class:`HopfieldMemory` for the parameters.
    """

    backend = "dense"

    def __init__(self, learning_rule: LearningRule, dim: int, *, layout: MaskLayout | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 max_bytes: int | None = None, run_digest: str | None = None) -> None:
        super().__init__(learning_rule, dim, layout=layout, device=device, dtype=dtype, max_bytes=max_bytes,
                         run_digest=run_digest)
        self._weights = torch.zeros(dim, dim, dtype=dtype, device=self._device)  # Ψ, symmetric
        self._extras = {name: torch.zeros(dim, dtype=dtype, device=self._device) for name in learning_rule.extra_names()}

    @property
    def nbytes(self) -> int:
        tensors = [self._weights, self._pattern_sum, *self._extras.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    @classmethod
    def estimate_nbytes(cls, learning_rule: LearningRule, dim: int, count: int, dtype: torch.dtype = torch.float32) -> int:
        """Ψ (d², whatever ``count`` is), the rule's (d,) extras and pattern sum, and the store's d² temporaries."""
        itemsize = torch.empty(0, dtype=dtype).element_size()
        state = (dim * dim + len(learning_rule.extra_names()) * dim) * itemsize + dim * 4
        return state + learning_rule.dense_scratch_nbytes(dim)

    @classmethod
    def _size_detail(cls, learning_rule: LearningRule, dim: int, dtype: torch.dtype) -> str:
        matrix = dim * dim * torch.empty(0, dtype=dtype).element_size()
        scratch = learning_rule.dense_scratch_nbytes(dim)
        extra = f", and storing adds {scratch:,} bytes of work matrices" if scratch else ""
        return f"the d×d matrix alone is {matrix:,} bytes{extra}"

    def weights(self) -> Tensor:
        return self._weights.clone()

    def _store(self, patterns: Tensor) -> None:
        self._rule.dense_store(self._weights, self._extras, patterns)

    def _field(self, states: Tensor) -> Tensor:
        return quadratic_field(states, self._weights, self.threshold)

    def _energy(self, states: Tensor) -> Tensor:
        return quadratic_energy(states, self._weights, self.threshold)

    def _dynamics(self, states: Tensor) -> "_DenseDynamics":
        return _DenseDynamics(self._weights, states, self.threshold)

    def _state_tensors(self) -> dict[str, Tensor]:
        return {"weights": self._weights, **self._extras}

    def _load_state(self, tensors: Mapping[str, Tensor], count: int, path: Any) -> None:
        super()._load_state(tensors, count, path)
        d = self._dim
        self._weights = check_store_tensor(tensors, "weights", (d, d), self._dtype, path).to(self._device)
        for name in self._extras:
            self._extras[name] = check_store_tensor(tensors, name, (d,), self._dtype, path).to(self._device)


class _DenseDynamics:
    """Asynchronous-recall cache for the dense backend: the fields h = Ψ s - θ, updated per flip."""

    def __init__(self, weights: Tensor, states: Tensor, threshold: float) -> None:
        self._weights = weights
        self._fields = quadratic_field(states, weights, threshold)  # (n, d)
        self.self_coupling = weights.diagonal()

    def field(self, unit: int) -> Tensor:
        return self._fields[:, unit]

    def flip(self, unit: int, delta: Tensor) -> None:
        self._fields.addr_(delta, self._weights[unit])
