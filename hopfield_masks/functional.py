"""Stateless Hopfield math: quadratic and softmax energies and fields, sign and k-WTA updates, recall loops.

Conventions: states are ±1 (or real, for gradients) with shape (d,) or (n, d). The field is minus the
gradient of the energy, ``h = -dE/ds``; a unit's update is ``sign(h)`` with ties keeping the state.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import torch
from torch import Tensor


class RecallResult(NamedTuple):
    """Outcome of recalling a batch of probes.

    Attributes
    ----------
    states : Tensor of shape (n, d)
        Final ±1 states.
    steps : Tensor of shape (n,), int64
        Updates that changed the state (sync: steps; async: sweeps with a flip).
    converged : Tensor of shape (n,), bool
        Ended in a fixed point.
    cycled : Tensor of shape (n,), bool
        Ended in a 2-cycle (sync only; the state returned is one of the two). Neither flag: step limit hit.
    energy : Tensor of shape (n,)
        Energy of the final states.
    """

    states: Tensor
    steps: Tensor
    converged: Tensor
    cycled: Tensor
    energy: Tensor


def quadratic_field(states: Tensor, weights: Tensor, threshold: float = 0.0) -> Tensor:
    """Field ``h = Ψ s - θ`` for a symmetric (d, d) ``weights`` Ψ; states (d,) or (n, d) -> same shape."""
    return states @ weights - threshold


def quadratic_energy(states: Tensor, weights: Tensor, threshold: float = 0.0) -> Tensor:
    """Energy ``E = -½ sᵀΨs + θ Σ s``; states (d,) or (n, d) -> () or (n,)."""
    return -0.5 * (states * (states @ weights)).sum(-1) + threshold * states.sum(-1)


def softmax_field(overlaps: Tensor, beta: float) -> Tensor:
    """Read-out weights ``softmax(β X s)`` over K patterns from overlaps ``X s`` of shape (..., K)."""
    return torch.softmax(beta * overlaps, dim=-1)


def softmax_energy(overlaps: Tensor, beta: float) -> Tensor:
    """Modern-Hopfield energy ``E = -(1/β) log Σ_μ exp(β x_μ·s)`` from overlaps of shape (..., K)."""
    return -torch.logsumexp(beta * overlaps, dim=-1) / beta


def snap_field(field: Tensor, step: float | None, threshold: float = 0.0) -> Tensor:
    """Round ``field + threshold`` to the nearest multiple of ``step`` (nothing to do when ``step`` is None).

    For rules whose exact ``Ψ s`` lies on a grid (see ``LearningRule.field_step``) this undoes float
    rounding, so exact ties stay exact ties.
    """
    if step is None:
        return field
    grid = torch.round((field.double() + threshold) / step)  # in float64: a float16 d·h would overflow
    return (grid * step - threshold).to(field.dtype)


class SnappedDynamics:
    """:class:`UnitDynamics` whose fields are rounded to a grid, as :func:`snap_field` does."""

    def __init__(self, dynamics: "UnitDynamics", step: float, threshold: float) -> None:
        self._dynamics, self._step, self._threshold = dynamics, step, threshold
        self.self_coupling = dynamics.self_coupling

    def field(self, unit: int) -> Tensor:
        return snap_field(self._dynamics.field(unit), self._step, self._threshold)

    def flip(self, unit: int, delta: Tensor) -> None:
        self._dynamics.flip(unit, delta)


def sign_update(field: Tensor, states: Tensor) -> Tensor:
    """``sign(field)``, keeping the current state where the field is exactly 0."""
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, states)).to(states.dtype)


def kwta_update(field: Tensor, k: int) -> Tensor:
    """k-winners-take-all: +1 on the ``k`` largest fields of each row, -1 elsewhere.

    Among equal fields at the cut, which units win is ``torch.topk``'s choice: unspecified, and it may
    differ between devices.
    """
    winners = torch.topk(field, k, dim=-1, sorted=False).indices
    out = torch.full_like(field, -1.0)
    return out.scatter_(-1, winners, 1.0)


def update_states(field: Tensor, states: Tensor, kwta: int | None = None) -> Tensor:
    """One synchronous update of every unit: sign with ties kept, or k-WTA when ``kwta`` is set."""
    return sign_update(field, states) if kwta is None else kwta_update(field, kwta)


def sync_recall(field_fn: Callable[[Tensor], Tensor], states: Tensor, max_steps: int,
                kwta: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Update all units at once until a fixed point, a 2-cycle or ``max_steps``.

    Parameters
    ----------
    field_fn : callable mapping states (m, d) to fields (m, d)
    states : Tensor of shape (n, d), ±1
    max_steps : int
    kwta : int or None
        Use k-winners-take-all instead of sign.

    Returns
    -------
    states (n, d), steps (n,), converged (n,), cycled (n,)
    """
    n = states.shape[0]
    states = states.clone()
    before = states.clone()  # state one step earlier, to detect 2-cycles
    steps = torch.zeros(n, dtype=torch.long, device=states.device)
    converged = torch.zeros(n, dtype=torch.bool, device=states.device)
    cycled = torch.zeros_like(converged)
    active = torch.arange(n, device=states.device)
    for step in range(max_steps):
        if active.numel() == 0:
            break
        current = states[active]
        new = update_states(field_fn(current), current, kwta)
        same = (new == current).all(-1)
        back = (new == before[active]).all(-1) & ~same if step > 0 else torch.zeros_like(same)
        converged[active[same]] = True
        cycled[active[back]] = True
        moving = ~same & ~back
        before[active] = current
        states[active[moving]] = new[moving]
        steps[active[moving]] += 1
        active = active[moving]
    return states, steps, converged, cycled


class UnitDynamics(Protocol):
    """Per-unit access a memory gives asynchronous recall; built for one batch of states."""

    self_coupling: Tensor  # (d,) diagonal Ψ_ii; a flip needs s_i h_i < min(0, Ψ_ii) so energy drops

    def field(self, unit: int) -> Tensor:
        """Field of ``unit`` for every state, shape (n,)."""

    def flip(self, unit: int, delta: Tensor) -> None:
        """Tell the cache that ``states[:, unit]`` changed by ``delta`` (n,), values 0 or ±2."""


def async_recall(dynamics: UnitDynamics, states: Tensor, max_steps: int, generator: torch.Generator,
                 on_flip: Callable[[int, Tensor, Tensor], None] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Update one unit at a time in a random order per sweep until a sweep changes nothing.

    A unit flips only where its field disagrees strictly with its state and the flip lowers the energy
    (``s_i h_i < min(0, Ψ_ii)``; the second part matters only for a negative diagonal), so the energy
    falls with every flip and no cycle can occur.

    Parameters
    ----------
    dynamics : UnitDynamics built for ``states``
    states : Tensor of shape (n, d), ±1; updated in place
    max_steps : int
        Most sweeps.
    generator : torch.Generator (CPU)
        Source of the unit order.
    on_flip : callable(unit, flipped (n,) bool, states (n, d)), optional
        Called after each unit update that flipped at least one state.

    Returns
    -------
    states (n, d), steps (n,), converged (n,), cycled (n,) (always False)
    """
    n, d = states.shape
    steps = torch.zeros(n, dtype=torch.long, device=states.device)
    converged = torch.zeros(n, dtype=torch.bool, device=states.device)
    limit = torch.clamp(dynamics.self_coupling, max=0.0)
    for _ in range(max_steps):
        flipped_any = torch.zeros(n, dtype=torch.bool, device=states.device)
        for unit in torch.randperm(d, generator=generator).tolist():
            unit_state = states[:, unit]
            flipped = unit_state * dynamics.field(unit) < limit[unit]
            if bool(flipped.any()):
                delta = torch.where(flipped, -2.0 * unit_state, 0.0).to(states.dtype)
                states[:, unit] += delta
                dynamics.flip(unit, delta)
                flipped_any |= flipped
                if on_flip is not None:
                    on_flip(unit, flipped, states)
        steps += flipped_any
        converged |= ~flipped_any
        if bool(converged.all()):
            break
    return states, steps, converged, torch.zeros_like(converged)
