"""Parameter superposition for a linear layer: one shared weight, a fixed random context per task, y = W (C_t x) + b.

The context (:mod:`supsup_core.baselines.contexts`) is rebuilt from the run's seed, the task id and the
layer's index, so a task stores nothing (``task_state`` is empty) and the memory per task is
:func:`~supsup_core.baselines.contexts.context_nbytes`. The shared ``weight`` and ``bias`` are what every
task trains (``task_parameters``), as in the reference code, where all layers train on every task.

With ``"complex"`` contexts the weight is complex (``W`` of shape (out, in), complex64) and the layer
returns the real part, ``Re(W (c ⊙ x)) + b``: the next real nonlinearity sees a real input and the
imaginary part carries no gradient to it, which is the simplest of the choices the paper leaves open.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.baselines.contexts import CONTEXT_KINDS, context_nbytes, task_context
from supsup_core.checks import check_choice, check_int
from supsup_core.nn.task_modules import TaskModule

__all__ = ["PSPLinear"]


class PSPLinear(TaskModule):
    """A linear layer whose input is transformed by task ``t``'s fixed context before the shared weight.

    Parameters
    ----------
    in_features, out_features : int
    kind : {"rotation", "complex", "binary"}
        The context (see :mod:`supsup_core.baselines.contexts`).
    seed : int
        The run's seed; with ``layer`` and the task id it fixes every context.
    layer : int
        The layer's index in the network, so layers draw different contexts.
    powers : bool
        Task ``t`` uses ``C^(t+1)`` of one context (rotation and complex only).
    num_tasks : int
        Tasks to add at once.
    generator : torch.Generator, optional
        Seeds the shared weight's initialisation (Kaiming uniform, as ``nn.Linear``).
    """

    def __init__(self, in_features: int, out_features: int, *, kind: str, seed: int, layer: int = 0,
                 powers: bool = False, num_tasks: int = 0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_choice(kind, "context kind", CONTEXT_KINDS, "Use rotation, complex or binary.")
        check_int(in_features, "in_features", minimum=1)
        check_int(out_features, "out_features", minimum=1)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.kind, self.seed, self.layer, self.powers = kind, int(seed), int(layer), bool(powers)
        bound = 1 / math.sqrt(self.in_features)
        shape = (self.out_features, self.in_features)
        weight = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        if kind == "complex":  # the same variance split over the real and imaginary parts
            imag = (torch.rand(shape, generator=generator) * 2 - 1) * bound
            weight = torch.complex(weight, imag) / math.sqrt(2)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter((torch.rand(self.out_features, generator=generator) * 2 - 1) * bound)
        self._num_tasks = 0  # task t's context is the non-persistent buffer context_t: it follows .to(), is never saved
        self._task_id = 0
        for _ in range(num_tasks):
            self.add_task()

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    def context(self, task_id: int) -> torch.Tensor:
        """Task ``task_id``'s context: an (in, in) matrix for rotation, an (in,) vector otherwise."""
        self._check_task(task_id)
        return getattr(self, f"context_{task_id}")

    def context_nbytes(self) -> int:
        """Bytes of context this layer holds per task in memory (0 with powers); the run directory stores none."""
        return context_nbytes(self.kind, self.in_features, powers=self.powers)

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """Draw the next task's context (fixed by seed, task id and layer; ``generator`` is not used)."""
        if init:
            raise ValueError(f"a PSP layer's task has no state to start from (its context is drawn); got {sorted(init)}.")
        task_id = self._num_tasks
        context = task_context(self.kind, self.in_features, seed=self.seed, task_id=task_id, layer=self.layer,
                               powers=self.powers)
        self.register_buffer(f"context_{task_id}", context.to(self.weight.device), persistent=False)
        self._num_tasks += 1
        return task_id

    def set_task(self, task_id: int) -> None:
        self._check_task(task_id)
        self._task_id = int(task_id)

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        """Nothing: the context is rebuilt from the run's seed, the task id and the layer index."""
        self._check_task(task_id)
        return {}

    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        """Redraw the next task's context (``state`` is the empty :meth:`task_state`)."""
        return self.add_task(state)

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        """The shared weight and bias: every task trains them."""
        return [self.weight, self.bias]

    def _check_task(self, task_id: int) -> None:
        if not 0 <= task_id < self._num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: this layer holds {self._num_tasks} context(s); "
                             "call add_task() first.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.context(self._task_id)
        if self.kind == "rotation":
            return F.linear(x @ context.to(x.dtype).T, self.weight, self.bias)
        if self.kind == "binary":
            return F.linear(x * context.to(x.dtype), self.weight, self.bias)
        return F.linear(x.to(context.dtype) * context, self.weight).real + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kind={self.kind}, "
                f"powers={self.powers}, tasks={self.num_tasks}")
