"""Capacity sweeps: store random patterns at growing loads and measure fixed points and recall from noise."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from hopfield_masks.backends import memory_class
from hopfield_masks.checks import (
    check_choice,
    check_fraction,
    check_kwta,
    check_loads,
    check_positive_int,
)
from hopfield_masks.factory import DEFAULT_MAX_BYTES, default_backend, make_memory
from hopfield_masks.rules import RULES, make_rule
from hopfield_masks.seeding import seeded_generator

__all__ = [
    "CapacityConfig",
    "CapacityPoint",
    "CapacityResult",
    "default_kwta",
    "flip_bits",
    "generate_patterns",
    "mean_correlation",
    "measure_capacity",
    "theory_loads",
]

TRIAL_STREAM = 1
"""Purpose key of the capacity trials' random streams: trial t draws from ``seeded_generator(seed, TRIAL_STREAM, t)``."""


def generate_patterns(count: int, dim: int, *, density: float = 0.5, correlation: float = 0.0,
                      generator: torch.Generator) -> Tensor:
    """Random ±1 patterns with exactly ``round(density · dim)`` units at +1 each (like top-k masks).

    Correlated patterns copy each unit from one common random prototype with probability
    ``sqrt(correlation)`` and draw it afresh (P(+1) = density) otherwise; the +1 count is then made exact
    by switching off (or on) random units. Two patterns' bits thus correlate by about ``correlation``
    (:func:`mean_correlation` measures it).

    Parameters
    ----------
    count, dim : int
    density : float in (0, 1)
        P(+1).
    correlation : float in [0, 1)
    generator : torch.Generator (CPU)

    Returns
    -------
    Tensor of shape (count, dim), float32, values ±1.
    """
    active = min(max(round(density * dim), 1), dim - 1)
    prototype = torch.zeros(dim, dtype=torch.bool)
    prototype[torch.rand(dim, generator=generator).argsort()[:active]] = True
    copied = torch.rand(count, dim, generator=generator) < math.sqrt(correlation)
    fresh = torch.rand(count, dim, generator=generator) < density
    bits = torch.where(copied, prototype, fresh)
    # keys in [1, 2) for +1 units and [0, 1) for -1 units: the top `active` keep a random subset of the +1
    # units when there are too many, and add random -1 units when there are too few
    keys = bits.float() + torch.rand(count, dim, generator=generator)
    chosen = torch.zeros(count, dim, dtype=torch.bool)
    chosen.scatter_(1, keys.topk(active, dim=1).indices, True)
    return chosen.float() * 2 - 1


def flip_bits(patterns: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """Copies of ±1 ``patterns`` (n, d) with exactly ``round(noise · d)`` random units of each row flipped."""
    flips = round(noise * patterns.shape[-1])
    keys = torch.rand(patterns.shape, generator=generator).to(patterns.device)
    flipped = torch.zeros(patterns.shape, dtype=torch.bool, device=patterns.device)
    flipped.scatter_(-1, keys.topk(flips, dim=-1).indices, True)
    return torch.where(flipped, -patterns, patterns)


def mean_correlation(patterns: Tensor) -> float:
    """Mean Pearson correlation between the units of distinct rows of ``patterns`` (n, d); NaN if n < 2."""
    if patterns.shape[0] < 2:
        return float("nan")
    centred = patterns.double() - patterns.double().mean(-1, keepdim=True)
    unit = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    gram = unit @ unit.T
    n = patterns.shape[0]
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))


def theory_loads(dim: int) -> dict[str, float]:
    """Classical capacity estimates as loads (patterns / d) at this d."""
    log_d = math.log(dim)
    return {
        "0.138 (Hebbian, ~1.5% bit errors)": 0.138,
        "1/(2 ln d) (Hebbian, exact)": 1.0 / (2.0 * log_d),
        "1/sqrt(2 ln d) (Storkey)": 1.0 / math.sqrt(2.0 * log_d),
    }


def default_kwta(rule: str, density: float, dim: int, mode: str = "sync") -> int | None:
    """k-WTA size used when none is asked for: round(density · d) for the covariance rule with sync recall, else None.

    k-WTA is a synchronous update, so asynchronous recall gets none (it uses the covariance threshold).
    """
    return round(density * dim) if rule == "covariance" and mode == "sync" else None


@dataclass(frozen=True)
class CapacityConfig:
    """What a capacity sweep measures.

    Parameters
    ----------
    rule : str
        A key of ``RULES``.
    dim : int
        d.
    loads : tuple of float
        Loads K/d to measure (K = max(1, round(load · d))).
    density : float in (0, 1)
        P(+1) of the patterns.
    correlation : float in [0, 1)
        Correlation between patterns (see :func:`generate_patterns`).
    noise : float in [0, 1]
        Fraction of bits flipped in each probe.
    trials : int
        Independent repetitions (fresh patterns and noise).
    seed : int
    backend : str or None
        None or "auto": as :func:`~hopfield_masks.default_backend` picks (dense while the d×d matrix is small,
        else implicit where the rule has it).
    mode : {"sync", "async"}
    kwta : int or None or "auto"
        k-winners-take-all recall (sync only, 1 <= k <= dim). "auto": :func:`default_kwta` picks it
        (round(density · d) for the covariance rule with sync recall, else None); the config holds the result.
    max_steps : int
    rule_options : dict
        Options passed to the rule (e.g. ``{"beta": 1.0}``).
    max_bytes : int or None
        Refuse a memory that would need more bytes (default 2 GiB; None: no bound).
    """

    rule: str
    dim: int
    loads: tuple[float, ...]
    density: float = 0.5
    correlation: float = 0.0
    noise: float = 0.1
    trials: int = 1
    seed: int = 0
    backend: str | None = None
    mode: str = "sync"
    kwta: int | str | None = None
    max_steps: int = 100
    rule_options: Mapping[str, Any] = field(default_factory=dict)
    max_bytes: int | None = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        check_choice(self.rule, "rule", RULES)
        check_positive_int(self.dim, "dim", minimum=2)
        object.__setattr__(self, "loads", check_loads(tuple(self.loads)))
        check_fraction(self.density, "density", open_low=True, open_high=True, hint="It is P(+1), e.g. 0.1.")
        check_fraction(self.correlation, "correlation", open_high=True)
        check_fraction(self.noise, "noise")
        check_positive_int(self.trials, "trials")
        check_positive_int(self.seed, "seed", minimum=0)
        check_choice(self.mode, "mode", ("sync", "async"))
        check_positive_int(self.max_steps, "max_steps")
        if self.kwta == "auto":
            object.__setattr__(self, "kwta", default_kwta(self.rule, self.density, self.dim, self.mode))
        check_kwta(self.kwta, self.dim, self.mode)
        make_rule(self.rule, **self.rule_options)  # checks the options' names and values (e.g. a finite beta)
        if self.max_bytes is not None:
            check_positive_int(self.max_bytes, "max_bytes")
        if self.backend in (None, "auto"):
            most = max(max(1, round(load * self.dim)) for load in self.loads)
            object.__setattr__(self, "backend", default_backend(self.rule, self.dim, count=most, max_bytes=self.max_bytes))
        memory_class(self.rule, self.backend)  # refuses a backend the rule has not, naming the one to use


class CapacityPoint(NamedTuple):
    """Measurements at one load, averaged over trials."""

    load: float
    patterns: int
    fixed_point_fraction: float
    exact_recall_fraction: float
    mean_overlap: float
    step_limit_fraction: float


class CapacityResult(NamedTuple):
    """A whole sweep: the config, the points in load order, and the measured pattern correlation."""

    config: CapacityConfig
    points: list[CapacityPoint]
    measured_correlation: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"rule", "dim", "density", ..., "points": [{"load", "patterns", ...}]}``."""
        c = self.config
        return {
            "rule": c.rule, "dim": c.dim, "density": c.density, "correlation": c.correlation,
            "measured_correlation": self.measured_correlation, "noise": c.noise, "trials": c.trials,
            "seed": c.seed, "backend": c.backend, "mode": c.mode, "kwta": c.kwta, "max_steps": c.max_steps,
            "rule_options": dict(c.rule_options), "theory_loads": theory_loads(c.dim),
            "points": [p._asdict() for p in self.points],
        }


def measure_capacity(config: CapacityConfig, *, device: torch.device | str | None = None,
                     progress: bool = False) -> CapacityResult:
    """Sweep the loads of ``config``: per trial one memory is filled incrementally in load order.

    At each load every stored pattern is tested as a fixed point, and recalled from a probe with
    ``noise · d`` bits flipped; "exact" means the recalled state equals the stored pattern.

    Returns
    -------
    CapacityResult
    """
    counts = {load: max(1, round(load * config.dim)) for load in config.loads}
    order = sorted(set(counts.values()))
    totals = {count: torch.zeros(5, dtype=torch.float64) for count in order}
    correlations = []
    with tqdm(total=config.trials * len(order), disable=not progress, desc=f"capacity {config.rule}") as bar:
        for trial in range(config.trials):
            generator = seeded_generator(config.seed, TRIAL_STREAM, trial)
            patterns = generate_patterns(order[-1], config.dim, density=config.density,
                                         correlation=config.correlation, generator=generator).to(device)
            correlations.append(mean_correlation(patterns))
            memory = make_memory(config.rule, config.dim, config.backend, device=device, max_bytes=config.max_bytes,
                                 **config.rule_options)
            for count in order:
                memory.store(patterns[memory.count : count])
                totals[count] += _measure(memory, patterns[:count], config, generator)
                bar.update()
    points = []
    for load in config.loads:
        count = counts[load]
        fixed, exact, overlap, stuck, probes = totals[count].tolist()
        points.append(CapacityPoint(count / config.dim, count, fixed / probes, exact / probes, overlap / probes,
                                    stuck / probes))
    return CapacityResult(config, points, float(torch.tensor(correlations).nanmean()))


def _measure(memory: Any, stored: Tensor, config: CapacityConfig, generator: torch.Generator) -> Tensor:
    """Sums over the stored patterns: fixed points, exact recalls, overlaps, step-limit hits, probes."""
    fixed = memory.is_fixed_point(stored, config.kwta)
    probes = flip_bits(stored, config.noise, generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # step-limit hits are counted instead
        result = memory.recall(probes, mode=config.mode, max_steps=config.max_steps, kwta=config.kwta,
                               seed=int(torch.randint(2**31, (1,), generator=generator)))
    exact = (result.states == stored).all(-1)
    overlap = (result.states * stored).mean(-1)
    stuck = ~result.converged & ~result.cycled
    return torch.tensor([fixed.sum().item(), exact.sum().item(), overlap.sum().item(), stuck.sum().item(),
                         stored.shape[0]], dtype=torch.float64)
