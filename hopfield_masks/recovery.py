"""Recovery of a stored pattern by gradient descent on z, a real-valued relaxation of the ±1 state.

The state is ``s = sign(z)``; z is the only thing the descents change (it is not a supermask's
``scores``: those belong to the masked layers). The annealed descent (:func:`anneal`, the reference)
minimises ``(1 − λ_t)·H(s) + γ·λ_t·E(s)`` at step t of T with a straight-through sign and ``λ_t`` a
schedule from 0 to 1: the entropy pulls towards the right task early, the energy snaps the state onto
a stored pattern late (HopSupSup, Wortsman et al. 2020). The steered descent (:func:`steer`) passes the
entropy gradient through the memory and ends with a recall.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

import torch

from hopfield_masks.checks import check_choice, check_fraction, check_positive_int

__all__ = [
    "SCHEDULES",
    "RecoveryConfig",
    "RecoveryTrace",
    "RecoveryResult",
    "sign_ste",
    "anneal",
    "SteerConfig",
    "steer",
]


def _linear(t: int, total: int) -> float:
    return t / total


def _cosine(t: int, total: int) -> float:
    return 0.5 * (1.0 - math.cos(math.pi * t / total))


def _late_step(t: int, total: int) -> float:
    # entropy alone for the first half, then energy alone: a hard switch for comparison
    return 0.0 if t < total / 2 else 1.0


SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "linear": _linear,
    "cosine": _cosine,
    "step": _late_step,
}
"""λ(t, T) in [0, 1]: the weight of the energy term at step t of T."""


def _check_real(value: object, name: str, *, low: float, open_low: bool = False, hint: str = "") -> None:
    """A finite number >= ``low`` (> ``low`` with ``open_low``): NaN and ±inf are refused."""
    check_fraction(value, name, low=low, high=math.inf, open_low=open_low, open_high=True, hint=hint)


def _check_init(init: torch.Tensor) -> None:
    if init.dim() != 1:
        raise ValueError(f"init must be a 1-D vector of shape (d,), the starting z; got shape {tuple(init.shape)}. "
                         "Pass one value per mask bit, e.g. memory.mean_pattern.")


@dataclass(frozen=True)
class RecoveryConfig:
    """Knobs of the annealed descent; defaults are the reference code's (DESIGN §2).

    Parameters
    ----------
    steps : int
        T, the number of descent steps (one data batch each).
    lr, momentum, weight_decay : float
        SGD on z.
    gamma : float
        γ, the weight of the Hopfield energy.
    schedule : str
        A key of :data:`SCHEDULES`.
    """

    steps: int = 30
    lr: float = 500.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    gamma: float = 1.5e-3
    schedule: str = "linear"

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_choice(self.schedule, "schedule", sorted(SCHEDULES))
        _check_real(self.lr, "lr", low=0.0, open_low=True, hint="SGD's learning rate, e.g. 500 (the reference's).")
        check_fraction(self.momentum, "momentum", hint="SGD momentum, e.g. 0.9.")
        _check_real(self.weight_decay, "weight_decay", low=0.0, hint="e.g. 1e-4, or 0 for none.")
        _check_real(self.gamma, "gamma", low=0.0, hint="The energy weight γ, e.g. 1.5e-3.")


class RecoveryTrace(NamedTuple):
    """Per-step values of the descent (each list has one entry per step taken).

    entropy : list of float, the output entropy H of the step's batch
    energy : list of float, the Hopfield energy E of the state (``sign(z)`` before the annealed step,
        after the steered one)
    flips : list of int, bits of ``sign(z)`` the step changed
    states : list of int8 Tensor of shape (d,), ``sign(z)`` after each step, so a caller that knows the
        true pattern can count bit errors over the steps
    """

    entropy: list[float]
    energy: list[float]
    flips: list[int]
    states: list[torch.Tensor]


class RecoveryResult(NamedTuple):
    """Outcome of :func:`anneal` and :func:`steer`.

    state : Tensor of shape (d,), the recovered ±1 pattern (``sign(z)``; for :func:`steer`, recalled from it)
    z : Tensor of shape (d,), the final real-valued z
    steps : int, steps taken
    trace : RecoveryTrace
    """

    state: torch.Tensor
    z: torch.Tensor
    steps: int
    trace: RecoveryTrace


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, 1.0, -1.0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output


def sign_ste(z: torch.Tensor) -> torch.Tensor:
    """±1 sign of ``z`` (0 maps to +1) with a straight-through (identity) gradient; same shape as ``z``."""
    return _SignSTE.apply(z)


def anneal(
    *,
    entropy: Callable[[torch.Tensor, object], torch.Tensor],
    energy: Callable[[torch.Tensor], torch.Tensor],
    init: torch.Tensor,
    batches: Iterable[object],
    config: RecoveryConfig = RecoveryConfig(),
) -> RecoveryResult:
    """Run the annealed descent from ``init`` and return the recovered ±1 pattern.

    Parameters
    ----------
    entropy : callable (state, batch) -> scalar Tensor
        Output entropy of the network masked by ``state`` (a ±1 tensor of shape (d,) that carries the
        straight-through gradient) on one unlabelled ``batch``.
    energy : callable (state) -> scalar Tensor
        Hopfield energy of ``state``, differentiable (e.g. ``memory.energy``).
    init : Tensor of shape (d,)
        Starting z (the reference starts at the stored patterns' mean).
    batches : iterable
        One batch per step; the descent stops after ``config.steps`` or when batches run out.
    config : RecoveryConfig

    Returns
    -------
    RecoveryResult
    """
    _check_init(init)
    energy_weight = SCHEDULES[config.schedule]
    z = init.detach().clone().float().requires_grad_(True)
    optimizer = torch.optim.SGD([z], lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    trace = RecoveryTrace([], [], [], [])
    previous = sign_ste(z).detach()
    taken = 0
    for step, batch in enumerate(batches):
        if step >= config.steps:
            break
        weight = energy_weight(step, config.steps)
        state = sign_ste(z)
        h = entropy(state, batch)
        e = energy(state)
        loss = (1.0 - weight) * h + config.gamma * weight * e
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            current = torch.where(z >= 0, 1.0, -1.0)
            trace.flips.append(int((current != previous).sum()))
            trace.states.append(current.to(torch.int8))
            previous = current
        trace.entropy.append(float(h.detach()))
        trace.energy.append(float(e.detach()))
        taken += 1
    if taken == 0:
        raise ValueError("no batches were given; recovery needs at least one batch of unlabelled data")
    final = z.detach()
    return RecoveryResult(torch.where(final >= 0, 1.0, -1.0), final, taken, trace)


@dataclass(frozen=True)
class SteerConfig:
    """Knobs of :func:`steer`, the memory-steered descent.

    Parameters
    ----------
    steps : int
        Descent steps (one data batch each).
    step_size : float
        RMS change of z per step (the projected gradient is normalised, so this is scale-free).
    recall_steps : int
        Most synchronous Hopfield steps of the final recall from ``sign(z)``.
    patience : int or None
        Stop the descent early once ``sign(z)`` has not changed for this many consecutive steps (it
        usually settles within two or three); None runs all ``steps``.
    retries : int
        Used by :func:`supsup_core.hopsupsup.recover.recover_task` with memories that keep their patterns: when
        the recall ends on no stored pattern (a spurious mixture state), descend again from the start
        with more data per step, up to this many times (see :meth:`retry`).
    """

    steps: int = 30
    step_size: float = 0.25
    recall_steps: int = 100
    patience: int | None = 5
    retries: int = 2

    def retry(self, attempt: int) -> tuple["SteerConfig", int]:
        """The config of retry ``attempt`` (1, 2, ...) and how many batches each of its steps merges.

        Retry a merges 2^(a+1) batches per step and takes (a+1)× the steps at 0.4/a of the step size:
        for the defaults 4 batches, 60 steps of 0.1, then 8 batches, 90 steps of 0.05 (measured on 50
        PermutedMNIST masks: more evidence per step is what gets a descent out of a mixture state).
        """
        if attempt < 1:
            raise ValueError(f"attempt counts retries from 1; got {attempt}.")
        config = dataclasses.replace(self, steps=self.steps * (attempt + 1), step_size=self.step_size * 0.4 / attempt)
        return config, 2 ** (attempt + 1)

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_positive_int(self.recall_steps, "recall_steps")
        _check_real(self.step_size, "step_size", low=0.0, open_low=True, hint="The RMS change of z per step, e.g. 0.25.")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be an integer >= 1 or None (never stop early); got {self.patience!r}.")
        check_positive_int(self.retries, "retries", minimum=0)


def steer(
    *,
    entropy: Callable[[torch.Tensor, object], torch.Tensor],
    project: Callable[[torch.Tensor], torch.Tensor],
    recall: Callable[[torch.Tensor], torch.Tensor],
    energy: Callable[[torch.Tensor], torch.Tensor],
    init: torch.Tensor,
    batches: Iterable[object],
    config: SteerConfig = SteerConfig(),
) -> RecoveryResult:
    """Descend the output entropy inside the span the memory projects onto, then recall a stored pattern.

    The state is the soft mask ``clamp(z, −1, 1)``; each step moves z against the entropy gradient
    *after* passing it through the memory (``project(g) = Ψ g``). For the pseudo-inverse rule Ψ is the
    orthogonal projection onto the span of the stored patterns, so z stays a combination
    ``Σ_i c_i x_i`` and the step is SupSup's superposition gradient in pattern space, decorrelated by
    the Gram matrix (biased, correlated masks stay apart). A final Hopfield recall from ``sign(z)``
    snaps onto the stored pattern whose basin the descent ended in.

    Parameters
    ----------
    entropy : callable (state, batch) -> scalar Tensor
        Output entropy with the soft state (values in [−1, 1], shape (d,)) as the mask.
    project : callable (g) -> Tensor
        ``Ψ g`` for a gradient g of shape (d,).
    recall : callable (state) -> Tensor
        Hopfield recall of a ±1 state (d,) to a fixed point.
    energy : callable (state) -> scalar Tensor
        Hopfield energy, only recorded in the trace.
    init : Tensor of shape (d,)
        Starting z (the stored patterns' mean: the uniform superposition).
    batches : iterable of unlabelled batches
    config : SteerConfig

    Returns
    -------
    RecoveryResult (``steps`` counts descent steps; the recall's steps are not included)
    """
    _check_init(init)
    z = init.detach().clone().float()
    trace = RecoveryTrace([], [], [], [])
    previous = torch.where(z >= 0, 1.0, -1.0)
    taken = unchanged = 0
    for step, batch in enumerate(batches):
        if step >= config.steps or (config.patience is not None and unchanged >= config.patience):
            break
        state = z.clamp(-1.0, 1.0).requires_grad_(True)
        h = entropy(state, batch)
        (grad,) = torch.autograd.grad(h, state)
        with torch.no_grad():
            direction = project(grad)
            rms = direction.pow(2).mean().sqrt()
            if rms > 0:
                z -= config.step_size * direction / rms
            current = torch.where(z >= 0, 1.0, -1.0)
            trace.flips.append(int((current != previous).sum()))
            unchanged = unchanged + 1 if trace.flips[-1] == 0 else 0
            trace.states.append(current.to(torch.int8))
            trace.energy.append(float(energy(current)))
            previous = current
        trace.entropy.append(float(h.detach()))
        taken += 1
    if taken == 0:
        raise ValueError("no batches were given; recovery needs at least one batch of unlabelled data")
    with torch.no_grad():
        state = recall(torch.where(z >= 0, 1.0, -1.0))
    return RecoveryResult(state, z, taken, trace)
