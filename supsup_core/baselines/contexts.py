"""Parameter-superposition contexts: the fixed per-task transforms C_k that PSP puts in front of each layer.

PSP (Cheung et al. 2019) computes ``y = W (C_k x)`` with one shared ``W`` and a context ``C_k`` per task,
drawn at random and never trained. The three kinds of the paper, and what each costs per task for an
input of N features:

- ``"rotation"``: a Haar-random orthogonal N×N matrix (N² numbers);
- ``"complex"``: ``diag(e^{iφ})`` with φ uniform on [−π, π] (N phases; the layer's weights are complex);
- ``"binary"``: ``diag(c)`` with c uniform on {−1, +1} (N bits), complex with two phases.

With ``powers``, task ``t`` uses ``C^(t+1)`` of one drawn context ``C`` (rotation and complex only), so
nothing is stored per task. Every draw comes from :func:`hopfield_masks.seeding.seeded_generator` with
the run's seed, the task id, the layer's index and :data:`CONTEXT_STREAM` last, so a context never shares
a stream with another layer's or with a task's score or batch draws.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from hopfield_masks.seeding import seeded_generator
from supsup_core.checks import check_choice, check_int

__all__ = ["CONTEXT_KINDS", "CONTEXT_STREAM", "rotation_context", "complex_context", "binary_context",
           "task_context", "context_power", "check_context_powers", "context_nbytes"]

CONTEXT_STREAM = 3
"""Purpose key of the context draws: layer l's context of task t comes from ``seeded_generator(seed, t, l, CONTEXT_STREAM)``."""


def rotation_context(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random orthogonal matrix, shape ``(n, n)``, float32.

    QR of a standard Gaussian matrix, with the columns' signs fixed so that ``R`` has a positive diagonal:
    without the fix QR's sign convention biases the distribution away from Haar measure.
    """
    gaussian = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return (q * torch.sign(torch.diagonal(r))).to(torch.float32)


def complex_context(n: int, generator: torch.Generator) -> torch.Tensor:
    """Unit-modulus phases ``e^{iφ}``, φ uniform on [−π, π]: a complex64 vector of shape ``(n,)`` (a diagonal context)."""
    phases = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    return torch.polar(torch.ones_like(phases), phases).to(torch.complex64)


def binary_context(n: int, generator: torch.Generator) -> torch.Tensor:
    """Signs uniform on {−1, +1}: a float32 vector of shape ``(n,)`` (a diagonal context)."""
    return torch.randint(0, 2, (n,), generator=generator).to(torch.float32) * 2 - 1


# kind -> draw(n, generator); a new kind adds an entry here
CONTEXT_KINDS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "rotation": rotation_context,
    "complex": complex_context,
    "binary": binary_context,
}


def task_context(kind: str, n: int, *, seed: int, task_id: int, layer: int = 0, powers: bool = False) -> torch.Tensor:
    """The context of task ``task_id`` of a run seeded ``seed``: an ``(n, n)`` matrix for rotation, else a vector.

    Parameters
    ----------
    kind : {"rotation", "complex", "binary"}
    n : int
        Input features of the layer the context acts on.
    seed, task_id : int
        The run's seed and the task; the same pair always gives the same context.
    layer : int
        Which layer of the network (0, 1, ...): each layer draws its own contexts.
    powers : bool
        Task ``t`` uses ``C^(t+1)`` of the one context ``C`` drawn for task 0 (rotation and complex only:
        a binary context squared is the identity).
    """
    check_choice(kind, "context kind", CONTEXT_KINDS, "Use rotation, complex or binary.")
    check_int(n, "n", minimum=1, fix="Give the layer's number of input features.")
    check_int(task_id, "task_id", minimum=0)
    check_int(layer, "layer", minimum=0)
    if powers:
        check_context_powers(kind)
    if not powers:
        return CONTEXT_KINDS[kind](n, seeded_generator(seed, task_id, layer, CONTEXT_STREAM))
    return context_power(kind, CONTEXT_KINDS[kind](n, seeded_generator(seed, 0, layer, CONTEXT_STREAM)), task_id + 1)


def check_context_powers(kind: str) -> None:
    """Raise ``ValueError`` unless contexts of ``kind`` can be powers of one context (not binary: C² = I)."""
    if kind == "binary":
        raise ValueError("powers of a binary context repeat every second task (C² = I); use --context-powers with "
                         "rotation or complex contexts (psp-rotation, psp-complex) only.")


def context_power(kind: str, base: torch.Tensor, exponent: int) -> torch.Tensor:
    """``base`` to the power ``exponent``: a matrix power (in float64) for rotation, elementwise otherwise."""
    if kind == "rotation":
        return torch.linalg.matrix_power(base.double(), exponent).float()
    return base ** exponent


def context_nbytes(kind: str, n: int, *, powers: bool = False) -> int:
    """Bytes a task's context takes in memory as drawn: N² float32 for rotation, N complex64 for complex, N
    float32 for binary (N bits would do, packed), and nothing per task with powers (a layer then holds its one
    context and the current task's power, whatever the number of tasks)."""
    check_choice(kind, "context kind", CONTEXT_KINDS, "Use rotation, complex or binary.")
    if powers:
        return 0
    return {"rotation": 4 * n * n, "complex": 8 * n, "binary": 4 * n}[kind]
