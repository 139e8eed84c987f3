"""The recovery methods, by name: each knows its config type and runs its descent against a memory.

:data:`RECOVERY_METHODS` is the registry :func:`~supsup_core.hopsupsup.recover.recover_task` and the
``--method`` option read. A method is a :class:`RecoveryMethod`: the config dataclass it takes and a
``descend`` function ``(memory, entropy, init, batches, config) -> Descent``. Adding a method adds an
entry here, not a branch in ``recover_task``.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator, NamedTuple

import torch

from hopfield_masks import HopfieldMemory
from hopfield_masks.implicit import PackedMemory
from hopfield_masks.recovery import (
    RecoveryConfig,
    RecoveryResult,
    SteerConfig,
    anneal,
    steer,
)
from supsup_core.checks import check_choice

__all__ = ["MethodConfig", "Descent", "RecoveryMethod", "RECOVERY_METHODS", "recovery_config"]

MethodConfig = RecoveryConfig | SteerConfig
"""The config of one of the :data:`RECOVERY_METHODS`."""

Entropy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(state (d,), images (B, *input_shape)) -> scalar output entropy of the network masked by ``state``."""


class Descent(NamedTuple):
    """What a method's descent found.

    result : RecoveryResult, of the last attempt (its ``state`` is the recovered ±1 pattern, shape (d,))
    steps : int, descent steps over all attempts
    attempts : int, descents run: 1, plus any retries out of spurious states
    """

    result: RecoveryResult
    steps: int
    attempts: int


class RecoveryMethod(NamedTuple):
    """One entry of :data:`RECOVERY_METHODS`.

    config_type : the frozen dataclass of the method's knobs (its default instance is the default config)
    descend : callable (memory, entropy, init, batches, config) -> Descent
        ``init`` is the starting z of shape (d,); ``batches`` an iterator of unlabelled image batches.
    summary : str, one line for help texts
    """

    config_type: type[MethodConfig]
    descend: Callable[[HopfieldMemory, Entropy, torch.Tensor, Iterator[torch.Tensor], Any], Descent]
    summary: str

    @property
    def options(self) -> tuple[str, ...]:
        """The names of the knobs of ``config_type``."""
        return tuple(field.name for field in dataclasses.fields(self.config_type))


def _reference(memory: HopfieldMemory, entropy: Entropy, init: torch.Tensor, batches: Iterator[torch.Tensor],
               config: RecoveryConfig) -> Descent:
    """The paper's annealed descent on output entropy and the memory's energy."""
    result = anneal(entropy=entropy, energy=memory.energy, init=init, batches=batches, config=config)
    return Descent(result, result.steps, 1)


def _steered(memory: HopfieldMemory, entropy: Entropy, init: torch.Tensor, batches: Iterator[torch.Tensor],
             config: SteerConfig) -> Descent:
    """The memory-projected descent and a recall; with a memory that keeps its patterns, retries out of spurious ends."""
    zero = torch.zeros(memory.dim, device=memory.device, dtype=memory.dtype)
    offset = memory.field(zero).detach()  # −θ: the field of 0, so Ψg = field(g) − field(0)

    def project(grad: torch.Tensor) -> torch.Tensor:
        return memory.field(grad.to(memory.dtype)) - offset

    def recall(state: torch.Tensor) -> torch.Tensor:
        return memory.recall(state, mode="sync", max_steps=config.recall_steps).states[0]

    result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                   batches=batches, config=config)
    steps, attempts = result.steps, 1
    # Ended on no stored pattern (a spurious mixture): descend again with more data per step. Only a
    # memory that keeps its patterns can tell; landing on another task's pattern cannot be told apart.
    while isinstance(memory, PackedMemory) and attempts <= config.retries and int(memory.find_stored(result.state)) < 0:
        retry_config, merge = config.retry(attempts)
        merged = _merged(batches, merge)
        first = next(merged, None)
        if first is None:  # a finite iterator ran out: keep what the last attempt found
            break
        result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                       batches=itertools.chain([first], merged), config=retry_config)
        steps += result.steps
        attempts += 1
    return Descent(result, steps, attempts)


def _merged(batches: Iterator[torch.Tensor], count: int) -> Iterator[torch.Tensor]:
    """Batches of ``count`` consecutive batches each, concatenated (the last one shorter if they run out)."""
    while group := list(itertools.islice(batches, count)):
        yield torch.cat(group)


RECOVERY_METHODS: dict[str, RecoveryMethod] = {
    "steered": RecoveryMethod(SteerConfig, _steered,
                              "memory-projected descent, then recall (recommended, with the pseudo-inverse rule)"),
    "reference": RecoveryMethod(RecoveryConfig, _reference,
                                "the paper's annealed descent on output entropy and Hopfield energy"),
}
"""Recovery method name -> :class:`RecoveryMethod`; the first is the default."""


def recovery_config(method: str, **options: Any) -> MethodConfig:
    """The config of ``method`` with ``options`` set and every other knob at its default.

    Parameters
    ----------
    method : str
        A key of :data:`RECOVERY_METHODS`.
    **options
        Knobs of that method's config (e.g. ``steps``; ``gamma`` for "reference"; ``step_size`` for
        "steered"), each checked by the config.

    Returns
    -------
    RecoveryConfig or SteerConfig

    Raises
    ------
    ValueError
        An unknown method, a knob the method does not take (it would be ignored), or a bad value.
    """
    check_choice(method, "method", RECOVERY_METHODS)
    entry = RECOVERY_METHODS[method]
    for name in options:
        if name not in entry.options:
            owners = [other for other, m in RECOVERY_METHODS.items() if name in m.options]
            flag = f"--{name.replace('_', '-')}"
            if not owners:
                raise ValueError(f"{name} ({flag}) is not an option of any recovery method; method {method!r} takes "
                                 f"{', '.join(entry.options)}.")
            raise ValueError(f"{name} ({flag}) applies to method {' or '.join(map(repr, owners))} only, so method "
                             f"{method!r} would ignore it; drop it or choose method {owners[0]!r} (--method {owners[0]}).")
    return entry.config_type(**options)
