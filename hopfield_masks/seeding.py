"""Seeded random generators: one independent, reproducible stream per ``(seed, *keys)``.

Every seeded draw in the project (a task's score init and batch order, a recovery's image order, a
capacity trial's patterns) takes its generator from :func:`seeded_generator`, and no code invents its own
``seed * 1_000_003 + i`` arithmetic. Keys: a training run's task ``t`` draws from ``(seed, t)``; every
other purpose within a run appends a nonzero purpose constant *last* (``(seed, t, RECOVERY_STREAM)``),
so its streams never meet a task's (SeedSequence drops trailing zeros, never a trailing nonzero key).
A capacity sweep (``(seed, TRIAL_STREAM, trial)``, its own program) draws no run's streams, so its key
order, kept so its published tables reproduce, cannot collide with anything it runs beside.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["seeded_generator"]


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU generator for the stream ``keys`` of a computation seeded ``seed``.

    ``np.random.SeedSequence([seed, *keys])`` mixes the entropy, so neighbouring seeds or keys give
    unrelated streams, and ``(seed, 3)`` is never ``(seed + 1, 2)``. Trailing zero keys are not told
    apart (``(seed, 1, 0)`` is ``(seed, 1)``): give every stream of one purpose the same number of keys.

    Parameters
    ----------
    seed : int >= 0
        The user's seed (``--seed``).
    *keys : int >= 0
        Which stream: e.g. the task id, or a purpose constant followed by a trial index.
    """
    for value, name in ((seed, "seed"), *((k, "key") for k in keys)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {value!r}. Give e.g. --seed 0.")
    state = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))
