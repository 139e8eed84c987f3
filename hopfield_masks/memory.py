"""Hopfield memories that store ±1 patterns and recall them: the interface every backend shares."""
from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor

from hopfield_masks.checks import (
    check_choice,
    check_kwta,
    check_patterns,
    check_positive_int,
    check_run_digest,
    check_states,
    check_store_tensor,
    memory_too_large,
    require_stored,
)
from hopfield_masks.files import save_store
from hopfield_masks.functional import (
    RecallResult,
    SnappedDynamics,
    UnitDynamics,
    async_recall,
    snap_field,
    sync_recall,
    update_states,
)
from hopfield_masks.patterns import MaskLayout, masks_to_patterns
from hopfield_masks.rules import LearningRule

__all__ = ["HopfieldMemory"]


class HopfieldMemory(ABC):
    """A memory of ±1 patterns of ``dim`` units under one learning rule.

    ``field`` and ``energy`` are plain differentiable torch ops on float states of shape (d,) or (n, d),
    computed on the memory's device, so they can sit inside a loss. Make one by rule and backend name with
    :func:`~hopfield_masks.make_memory`, read one back with :func:`~hopfield_masks.load_memory`.

    Parameters
    ----------
    learning_rule : LearningRule
    dim : int
        d, the number of units.
    layout : MaskLayout or None
        Names and shapes of the layer masks a pattern is made of (must have ``layout.dim == dim``).
    device : torch.device or str or None
        Where the state lives (default CPU).
    dtype : torch.dtype
        Floating dtype of the state and of computed fields (default float32).
    """

    backend: ClassVar[str] = ""

    def __init__(self, learning_rule: LearningRule, dim: int, *, layout: MaskLayout | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 max_bytes: int | None = None, run_digest: str | None = None) -> None:
        check_positive_int(dim, "dim")
        if layout is not None and layout.dim != dim:
            raise ValueError(f"layout has {layout.dim} units but dim is {dim}; pass dim=layout.dim.")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype; got {dtype}. Use torch.float32.")
        if max_bytes is not None:
            check_positive_int(max_bytes, "max_bytes")
        check_run_digest(run_digest)
        self._max_bytes = max_bytes
        self._run_digest = run_digest
        # before any (d, d) or (d,) tensor exists: a memory too large for the bound is refused, not attempted
        self._check_size(learning_rule, dim, 0, dtype)
        self._rule = learning_rule
        self._dim = dim
        self._layout = layout
        self._device = torch.device("cpu" if device is None else device)
        self._dtype = dtype
        self._count = 0
        self._pattern_sum = torch.zeros(dim, dtype=torch.float32, device=self._device)  # Σ of stored ±1 patterns

    # ----------------------------------------------------------------------------------- description
    @property
    def rule(self) -> str:
        """Name of the learning rule (a key of ``RULES``)."""
        return self._rule.name

    @property
    def learning_rule(self) -> LearningRule:
        """The learning rule object with its options (data-dependent ones fixed after the first store)."""
        return self._rule

    @property
    def dim(self) -> int:
        """d, the number of units."""
        return self._dim

    @property
    def count(self) -> int:
        """Number of stored patterns."""
        return self._count

    @property
    def layout(self) -> MaskLayout | None:
        """Layout of the layer masks behind each pattern, if given."""
        return self._layout

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def threshold(self) -> float:
        """θ in the field ``h = Ψ s - θ`` (0 except for the covariance rule)."""
        return self._rule.resolved_threshold()

    @property
    def mean_pattern(self) -> Tensor:
        """Mean of the stored ±1 patterns, float (d,)."""
        require_stored(self._count)
        return (self._pattern_sum / self._count).to(self._dtype)

    @property
    def max_bytes(self) -> int | None:
        """The bound on :meth:`estimate_nbytes` that storing more patterns must stay under (None: no bound)."""
        return self._max_bytes

    @property
    def run_digest(self) -> str | None:
        """SHA-256 of the weights of the run the patterns were encoded from, if known (the store's identity)."""
        return self._run_digest

    @property
    def packed_patterns(self) -> Tensor | None:
        """Stored patterns bit-packed as uint8 (K, ceil(d/8)) where the backend keeps them, else None."""
        return None

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes of the memory's state (what a store file holds, give or take the header)."""

    @classmethod
    @abstractmethod
    def estimate_nbytes(cls, learning_rule: LearningRule, dim: int, count: int, dtype: torch.dtype = torch.float32) -> int:
        """Bytes this backend needs to hold ``count`` patterns of ``dim`` units, computed before allocating.

        The state (what :attr:`nbytes` reports once they are stored) plus the largest temporary a store
        allocates (e.g. the pseudo-inverse rule's float64 (d, d) work matrices in the dense backend).
        """

    def _check_size(self, learning_rule: LearningRule, dim: int, count: int, dtype: torch.dtype) -> None:
        if self._max_bytes is None:
            return
        need = type(self).estimate_nbytes(learning_rule, dim, count, dtype)
        if need > self._max_bytes:
            raise ValueError(memory_too_large(learning_rule.name, type(self).backend, dim, count, need, self._max_bytes,
                                              learning_rule.backends, type(self)._size_detail(learning_rule, dim, dtype)))

    @classmethod
    def _size_detail(cls, learning_rule: LearningRule, dim: int, dtype: torch.dtype) -> str:
        """What the estimate is made of, for the refusal message (default: nothing to add)."""
        return ""

    # ----------------------------------------------------------------------------------- storing
    def store(self, patterns: Tensor) -> "HopfieldMemory":
        """Store ±1 patterns incrementally (earlier patterns are not revisited as raw data).

        Parameters
        ----------
        patterns : Tensor of shape (d,) or (k, d), values -1 and +1.

        Returns
        -------
        self
        """
        patterns = check_patterns(patterns, self._dim).to(device=self._device, dtype=self._dtype)
        if patterns.shape[0] == 0:
            return self
        self._check_size(self._rule, self._dim, self._count + patterns.shape[0], self._dtype)
        if self._count == 0:
            self._rule = self._rule.prepare(patterns)
        with torch.no_grad():
            self._store(patterns)
        self._count += patterns.shape[0]
        self._pattern_sum += patterns.sum(0).float()
        return self

    def store_masks(self, masks: Tensor | Mapping[str, Tensor]) -> "HopfieldMemory":
        """Store {0,1} masks: a tensor (d,) / (k, d), or a dict of layer masks matching ``layout``."""
        if isinstance(masks, Mapping):
            if self._layout is None:
                raise ValueError("a dict of layer masks needs a layout; make the memory with layout=MaskLayout.from_masks(...).")
            masks = self._layout.flatten(masks)
        return self.store(masks_to_patterns(masks, dtype=self._dtype))

    # ----------------------------------------------------------------------------------- dynamics
    def _as_batch(self, states: Tensor) -> Tensor:
        states = check_states(states, self._dim)
        return states.to(device=self._device, dtype=self._dtype).reshape(-1, self._dim)

    def field(self, states: Tensor) -> Tensor:
        """Local field ``h = -dE/ds`` (``Ψ s - θ`` for quadratic rules); differentiable.

        Parameters
        ----------
        states : Tensor of shape (d,) or (n, d), float

        Returns
        -------
        Tensor of the same shape as ``states``.
        """
        batch = self._as_batch(states)
        return self._field(batch).reshape(states.shape)

    def energy(self, states: Tensor) -> Tensor:
        """Energy ``E(s)`` (``-½ sᵀΨs + θ Σ s`` for quadratic rules); differentiable.

        Parameters
        ----------
        states : Tensor of shape (d,) or (n, d), float

        Returns
        -------
        Tensor of shape () or (n,).
        """
        batch = self._as_batch(states)
        return self._energy(batch).reshape(states.shape[:-1])

    def is_fixed_point(self, states: Tensor, kwta: int | None = None) -> Tensor:
        """Whether one synchronous update leaves each ±1 state unchanged: bool (n,)."""
        states = check_patterns(states, self._dim, "states").to(device=self._device, dtype=self._dtype)
        check_kwta(kwta, self._dim)
        with torch.no_grad():
            return (update_states(self._decision_field(states), states, kwta) == states).all(-1)

    def _decision_field(self, states: Tensor) -> Tensor:
        """The field recall decides ±1 states by: :meth:`_field` rounded to the rule's grid, if it has one."""
        return snap_field(self._field(states), self._rule.field_step(self._dim), self.threshold)

    def recall(self, probes: Tensor, *, mode: str = "sync", max_steps: int = 100, kwta: int | None = None,
               seed: int = 0, on_flip: Callable[[int, Tensor, Tensor], None] | None = None) -> RecallResult:
        """Run the network from each probe until a fixed point, a 2-cycle (sync) or ``max_steps``.

        Parameters
        ----------
        probes : Tensor of shape (d,) or (n, d), values ±1
            A single probe is treated as a batch of one.
        mode : {"sync", "async"}
            "sync" updates every unit at once; "async" one unit at a time in a random order per sweep
            (seeded by ``seed``), and every flip strictly lowers the energy.
        max_steps : int
            Most synchronous steps or asynchronous sweeps. Hitting it warns.
        kwta : int or None
            k-winners-take-all recall (sync only): exactly ``kwta`` units end at +1.
        seed : int
            Seed of the asynchronous unit order.
        on_flip : callable(unit, flipped, states), optional
            Async only: called after each unit update that flipped some states.

        Returns
        -------
        RecallResult with states (n, d), steps (n,), converged (n,), cycled (n,), energy (n,).
        """
        require_stored(self._count)
        check_choice(mode, "mode", ("sync", "async"))
        check_positive_int(max_steps, "max_steps")
        check_kwta(kwta, self._dim, mode)
        states = check_patterns(probes, self._dim, "probes").to(device=self._device, dtype=self._dtype).clone()
        with torch.no_grad():
            if mode == "sync":
                states, steps, converged, cycled = sync_recall(self._decision_field, states, max_steps, kwta)
            else:
                generator = torch.Generator().manual_seed(seed)
                dynamics = self._dynamics(states)
                step = self._rule.field_step(self._dim)
                if step is not None:
                    dynamics = SnappedDynamics(dynamics, step, self.threshold)
                states, steps, converged, cycled = async_recall(dynamics, states, max_steps, generator, on_flip)
            energy = self._energy(states)
        stuck = int((~converged & ~cycled).sum())
        if stuck:
            warnings.warn(f"{stuck} of {states.shape[0]} probes hit max_steps={max_steps} before a fixed point "
                          "or 2-cycle; raise max_steps.", RuntimeWarning, stacklevel=2)
        return RecallResult(states, steps, converged, cycled, energy)

    # ----------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the memory to a store file (safetensors + JSON header), atomically.

        Read it back with :func:`~hopfield_masks.load_memory`.
        """
        header = {
            "rule": self.rule,
            "rule_options": self._rule.options(),
            "backend": self.backend,
            "dim": self._dim,
            "count": self._count,
            "dtype": str(self._dtype).removeprefix("torch."),
            "layout": None if self._layout is None else self._layout.to_dict(),
        }
        if self._run_digest is not None:  # optional field: stores made without a run leave it out
            header["run_weights_sha256"] = self._run_digest
        tensors = dict(self._state_tensors())
        if self._count:
            tensors["mean_pattern"] = self._pattern_sum / self._count
        save_store(path, tensors, header)

    def _load_state(self, tensors: Mapping[str, Tensor], count: int, path: Any) -> None:
        """Fill the state from a store file's tensors (shapes and dtypes checked)."""
        self._count = count
        if count:
            mean = check_store_tensor(tensors, "mean_pattern", (self._dim,), torch.float32, path)
            self._pattern_sum = torch.round(mean * count).to(self._device)

    # ----------------------------------------------------------------------------------- backend hooks
    @abstractmethod
    def _store(self, patterns: Tensor) -> None:
        """Add ±1 patterns (k, d) (device and dtype already set, k >= 1)."""

    @abstractmethod
    def _field(self, states: Tensor) -> Tensor:
        """Field of states (n, d) -> (n, d)."""

    @abstractmethod
    def _energy(self, states: Tensor) -> Tensor:
        """Energy of states (n, d) -> (n,)."""

    @abstractmethod
    def _dynamics(self, states: Tensor) -> UnitDynamics:
        """Per-unit field access for asynchronous recall of ``states`` (n, d), updated in place."""

    @abstractmethod
    def _state_tensors(self) -> dict[str, Tensor]:
        """Tensors a store file holds for this backend."""

    @abstractmethod
    def weights(self) -> Tensor:
        """Ψ as a (d, d) matrix (the implicit backend builds it: small d only)."""
