"""The fully connected network every baseline is built on: any layers, ReLU between them, input flattened."""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, fc_hidden_sizes

__all__ = ["FCStack", "build_fc_stack", "uniform"]


def uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform in [−bound, bound], float32, from ``generator``: torch's Kaiming-uniform layer initialisation with
    ``bound = 1/sqrt(fan_in)``, drawn from a seeded generator instead of the global one."""
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class FCStack(nn.Module):
    """``layers[-1](relu(... relu(layers[0](x.flatten(1)))))``: LeNet 784-300-100 or FC 784-1024-1024 with
    whatever linear layers a method uses (PSP, BatchEnsemble, per-task or plain ones).

    Input: Tensor of shape (N, *input_shape); output: (N, output_size) logits.
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


def build_fc_stack(config: ModelConfig, make_layer: Callable[[int, int, int, bool], nn.Module],
                   generator: torch.Generator | None = None) -> FCStack:
    """The fully connected architecture of ``config`` (lenet or fc1024) from ``make_layer(in, out, index, last)``
    (``last``: the output layer), with ``config.num_tasks`` tasks added (their state drawn from ``generator``).

    Layers are made in order (index 0 first), so weights drawn from one generator depend only on its seed.
    """
    sizes = (math.prod(config.input_shape), *fc_hidden_sizes(config), config.output_size)
    pairs = list(zip(sizes[:-1], sizes[1:]))
    stack = FCStack([make_layer(a, b, i, i == len(pairs) - 1) for i, (a, b) in enumerate(pairs)])
    for _ in range(config.num_tasks):
        modes.add_task(stack, generator=generator)
    return stack
