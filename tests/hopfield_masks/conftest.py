"""Fixtures for hopfield_masks tests: random ±1 patterns built with numpy from a seed."""
import numpy as np
import pytest
import torch


def random_patterns(seed: int, count: int, dim: int, density: float = 0.5) -> torch.Tensor:
    """(count, dim) float32 ±1 patterns with independent bits, P(+1) = density."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.where(rng.random((count, dim)) < density, 1.0, -1.0).astype(np.float32))


@pytest.fixture
def patterns_of():
    return random_patterns


# Two float paths (dense vs implicit fields, a full batch vs a shrinking subset, CPU vs GPU) round differently,
# so their discrete decisions are compared only where every field they decide by is clear of the threshold by
# more than that rounding: then, step by step, both paths make the same decisions (STYLE.md, Tests).
MARGIN = 1e-3


def _has_exact_grid(memory) -> bool:
    return memory.learning_rule.field_step(memory.dim) is not None  # recall snaps fields: decisions are exact


def sync_margins(memory, probes: torch.Tensor, max_steps: int = 100) -> torch.Tensor:
    """Per probe, the smallest |field - θ-free decision point| met along its synchronous recall (n,).

    +inf for rules whose fields recall snaps to an exact grid (no rounding can change a decision there).
    """
    probes = probes.reshape(-1, memory.dim).to(memory.dtype)
    if _has_exact_grid(memory):
        return torch.full((probes.shape[0],), float("inf"))
    states, before = probes.clone(), probes.clone()
    margins = torch.full((probes.shape[0],), float("inf"))
    active = torch.ones(probes.shape[0], dtype=torch.bool)
    for step in range(max_steps):
        if not active.any():
            break
        field = memory.field(states)
        margins = torch.where(active, torch.minimum(margins, field.abs().min(-1).values.float()), margins)
        new = torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, states)).to(states.dtype)
        done = (new == states).all(-1) | ((new == before).all(-1) if step > 0 else torch.zeros_like(active))
        before = states.clone()
        states = torch.where((active & ~done)[:, None], new, states)
        active &= ~done
    return margins


class _RecordingDynamics:
    """Wraps a memory's asynchronous-recall dynamics and records, per state, the smallest distance of any
    flip decision ``s_i h_i < min(0, Ψ_ii)`` from its threshold."""

    def __init__(self, dynamics, states: torch.Tensor) -> None:
        self._dynamics, self._states = dynamics, states
        self.self_coupling = dynamics.self_coupling
        self._limit = torch.clamp(dynamics.self_coupling, max=0.0)
        self.margins = torch.full((states.shape[0],), float("inf"))

    def field(self, unit: int) -> torch.Tensor:
        field = self._dynamics.field(unit)
        distance = (self._states[:, unit] * field - self._limit[unit]).abs().float()
        self.margins = torch.minimum(self.margins, distance.cpu())
        return field

    def flip(self, unit: int, delta: torch.Tensor) -> None:
        self._dynamics.flip(unit, delta)


def async_margins(memory, probes: torch.Tensor, seed: int, max_steps: int = 100) -> torch.Tensor:
    """Per probe, the smallest distance of a flip decision from its threshold along ``memory.recall(probes,
    mode="async", seed=seed)`` (the same unit order); +inf for rules with an exact field grid."""
    from hopfield_masks.functional import async_recall

    probes = probes.reshape(-1, memory.dim).to(memory.dtype)
    if _has_exact_grid(memory):
        return torch.full((probes.shape[0],), float("inf"))
    states = probes.clone()
    recording = _RecordingDynamics(memory._dynamics(states), states)  # white-box: the decisions recall makes
    async_recall(recording, states, max_steps, torch.Generator().manual_seed(seed))
    return recording.margins
