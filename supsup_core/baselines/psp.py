"""Parameter superposition layers: one shared weight, a fixed random context per task, y = W (C_t x) + b.

The context (:mod:`supsup_core.baselines.contexts`) is rebuilt from the run's seed, the task id and the
layer's index, so a task stores nothing (``task_state`` is empty) and the memory per task is
:func:`~supsup_core.baselines.contexts.context_nbytes`. The shared ``weight`` and ``bias`` are what every
task trains, as in the reference code, where all layers train on every task; no parameter belongs to one
task (``task_parameters`` is empty).

:class:`PSPLinear` applies the context to the layer's input. :class:`PSPConv2d` superposes the kernel, not
the image (Cheung et al. 2019): the context acts on the kernel's input side, the N = in·kh·kw numbers one
output channel reads at one position, so task t's kernel is ``W C_t`` with ``W`` viewed as (out, N).

With ``"complex"`` contexts the weight is complex (complex64) and a layer returns the real part of its
output: the next real nonlinearity sees a real input and the imaginary part carries no gradient to it,
which is the simplest of the choices the paper leaves open. For a real input that real part is the
layer applied with the real weight ``Re(W C_t)``.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.baselines.contexts import (
    CONTEXT_KINDS,
    context_nbytes,
    context_power,
    task_context,
)
from supsup_core.baselines.fc import uniform
from supsup_core.checks import check_choice, check_int
from supsup_core.nn.task_modules import TaskModule

__all__ = ["PSPLinear", "PSPConv2d"]


class _PSPLayer(TaskModule):
    """What the PSP layers share: the shared weight and bias, one context buffer per task, the task protocol.

    A subclass validates its sizes, passes the weight's shape and ``context_size`` (N, the inputs the
    weight reads per output) and defines ``forward`` with :meth:`context` of the current task.
    """

    def __init__(self, weight_shape: tuple[int, ...], context_size: int, *, bias: bool, kind: str, seed: int,
                 layer: int, powers: bool, num_tasks: int, generator: torch.Generator | None) -> None:
        super().__init__()
        check_choice(kind, "context kind", CONTEXT_KINDS, "Use rotation, complex or binary.")
        check_int(layer, "layer", minimum=0, fix="Number the network's PSP layers 0, 1, ...")
        check_int(num_tasks, "num_tasks", minimum=0)
        self.kind, self.seed, self.layer, self.powers = kind, int(seed), int(layer), bool(powers)
        self.context_size = int(context_size)
        # Kaiming uniform with the fan-in bound, as nn.Linear and nn.Conv2d draw weight and bias. A complex weight
        # draws its real and imaginary parts so each is a real layer's weight: Re(W c) = Re(W) cos φ − Im(W) sin φ
        # then has a real layer's variance, so the kinds start alike.
        bound = 1 / math.sqrt(self.context_size)
        weight = uniform(weight_shape, bound, generator)
        if kind == "complex":
            weight = torch.complex(weight, uniform(weight_shape, bound, generator))
        self.weight = nn.Parameter(weight)
        if bias:
            self.bias = nn.Parameter(uniform((weight_shape[0],), bound, generator))
        else:
            self.register_parameter("bias", None)
        # Task t's context is the non-persistent buffer context_t (it follows .to(), is never saved). With powers
        # the layer keeps only the one context C (context_base) and the current task's power, computed when asked.
        self._num_tasks = 0
        self._task_id = 0
        self._power: tuple[int, torch.Tensor] | None = None
        if self.powers:
            self.register_buffer("context_base", task_context(kind, self.context_size, seed=self.seed, task_id=0,
                                                              layer=self.layer), persistent=False)
        for _ in range(num_tasks):
            self.add_task()

    @property
    def num_tasks(self) -> int:
        return self._num_tasks

    def context(self, task_id: int) -> torch.Tensor:
        """Task ``task_id``'s context: (N, N) for rotation, (N,) otherwise, with N = ``context_size``."""
        self._check_task(task_id)
        if not self.powers:
            return getattr(self, f"context_{task_id}")
        base = self.context_base
        if self._power is None or self._power[0] != task_id or self._power[1].device != base.device:
            self._power = (task_id, context_power(self.kind, base, task_id + 1))
        return self._power[1]

    def context_nbytes(self) -> int:
        """Bytes of context this layer holds per task in memory (0 with powers); the run directory stores none."""
        return context_nbytes(self.kind, self.context_size, powers=self.powers)

    def draw_context(self, task_id: int) -> torch.Tensor | None:
        """Task ``task_id``'s context as drawn from the run's seed and the layer (None with powers: nothing is
        kept per task)."""
        if self.powers:
            return None
        return task_context(self.kind, self.context_size, seed=self.seed, task_id=task_id, layer=self.layer)

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """Draw the next task's context (fixed by seed, task id and layer; ``generator`` is not used)."""
        if init:
            raise ValueError(f"a PSP layer's task has no state to start from (its context is drawn); got "
                             f"{sorted(init)}. Call add_task() without init.")
        return self.append_context(self.draw_context(self._num_tasks))

    def append_context(self, context: torch.Tensor | None) -> int:
        """Add the next task with ``context`` (from :meth:`draw_context` of that task id); returns its id."""
        task_id = self._num_tasks
        if context is not None:
            self.register_buffer(f"context_{task_id}", context.to(self.weight.device), persistent=False)
        self._num_tasks += 1
        return task_id

    def pop_tasks(self, count: int) -> None:
        """Remove the last ``count`` tasks (and their contexts)."""
        check_int(count, "count", minimum=0)
        if count > self._num_tasks:
            raise ValueError(f"cannot remove {count} tasks: this layer holds {self._num_tasks}.")
        for task_id in range(self._num_tasks - count, self._num_tasks):
            if not self.powers:
                delattr(self, f"context_{task_id}")
        self._num_tasks -= count
        self._task_id = min(self._task_id, max(0, self._num_tasks - 1))

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
        """Nothing belongs to one task: the weight and bias are shared by all of them (a PSP method trains them
        with one optimizer through the run, see :meth:`supsup_core.nn.method.Method.shared_parameters`)."""
        self._check_task(task_id)
        return []

    def _check_task(self, task_id: int) -> None:
        if not 0 <= task_id < self._num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: this layer holds {self._num_tasks} context(s); "
                             "call add_task() first.")


class PSPLinear(_PSPLayer):
    """A linear layer whose input is transformed by task ``t``'s fixed context before the shared weight.

    Computes ``W (C_t x) + b``; with complex contexts ``Re(W (c_t ⊙ x)) + b``.

    Parameters
    ----------
    in_features, out_features : int
        The weight has shape (out_features, in_features); contexts act on the in_features inputs.
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
        check_int(in_features, "in_features", minimum=1)
        check_int(out_features, "out_features", minimum=1)
        super().__init__((int(out_features), int(in_features)), int(in_features), bias=True, kind=kind, seed=seed,
                         layer=layer, powers=powers, num_tasks=num_tasks, generator=generator)
        self.in_features, self.out_features = int(in_features), int(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task ``t``'s output, shape (..., out_features), for ``x`` of shape (..., in_features)."""
        context = self.context(self._task_id)
        if self.kind == "rotation":
            return F.linear(x @ context.to(x.dtype).T, self.weight, self.bias)
        if self.kind == "binary":
            return F.linear(x * context.to(x.dtype), self.weight, self.bias)
        return F.linear(x.to(context.dtype) * context, self.weight).real + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kind={self.kind}, "
                f"powers={self.powers}, tasks={self.num_tasks}")


class PSPConv2d(_PSPLayer):
    """A 2-d convolution whose kernel is superposed: task ``t`` convolves with ``W C_t``, the image is untouched.

    With N = in_channels·kernel_size² and the shared weight ``W`` viewed as (out_channels, N), task t's
    kernel is ``W C_t`` for a rotation (C_t of shape (N, N)) and ``W ⊙ c_t`` for binary and complex
    contexts (c_t of shape (N,), broadcast over the output channels), reshaped back to (out_channels,
    in_channels, kernel_size, kernel_size); the layer is an ordinary ``conv2d`` with it and the bias.
    Every position of the image thus sees ``W (C_t patch)``, the PSP linear map on its patch.

    With complex contexts ``W`` is complex and the layer returns the real part of the convolution; the
    input being real, that is ``conv2d(x, Re(W ⊙ c_t)) + b``, which is what is computed.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        The side of the square kernel.
    stride, padding : int
        As for ``nn.Conv2d``.
    bias : bool
        Add a shared, trained bias per output channel. Without it ``bias`` is None.
    kind, seed, layer, powers, num_tasks
        As for :class:`PSPLinear`; the contexts act on N = in_channels·kernel_size² inputs.
    generator : torch.Generator, optional
        Seeds the shared weight's initialisation (Kaiming uniform with the fan-in bound, as ``nn.Conv2d``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                 bias: bool = True, kind: str, seed: int, layer: int = 0, powers: bool = False, num_tasks: int = 0,
                 generator: torch.Generator | None = None) -> None:
        check_int(in_channels, "in_channels", minimum=1)
        check_int(out_channels, "out_channels", minimum=1)
        check_int(kernel_size, "kernel_size", minimum=1, fix="Give the side of the square kernel, e.g. 3.")
        check_int(stride, "stride", minimum=1)
        check_int(padding, "padding", minimum=0)
        shape = (int(out_channels), int(in_channels), int(kernel_size), int(kernel_size))
        super().__init__(shape, math.prod(shape[1:]), bias=bool(bias), kind=kind, seed=seed, layer=layer,
                         powers=powers, num_tasks=num_tasks, generator=generator)
        self.in_channels, self.out_channels, self.kernel_size = shape[1], shape[0], shape[2]
        self.stride, self.padding = int(stride), int(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task ``t``'s feature maps, (batch, out_channels, H', W'), for ``x`` of shape (batch, in_channels, H, W)."""
        context = self.context(self._task_id)
        if self.kind == "rotation":
            kernel = (self.weight.flatten(1) @ context.to(self.weight.dtype)).view_as(self.weight)
        else:  # a diagonal context scales each of the N inputs of every output channel
            kernel = self.weight * context.view(self.weight.shape[1:])
            if self.kind == "complex":
                kernel = kernel.real
        return F.conv2d(x, kernel.to(x.dtype), self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, p={self.padding}, "
                f"bias={self.bias is not None}, kind={self.kind}, powers={self.powers}, tasks={self.num_tasks}")
