"""Supermask ResNets: a reduced ResNet-18 and a ResNet-50 with masked convolutions and per-task BatchNorm."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.nn.layers import MaskedConv2d, MaskedLinear
from supsup_core.nn.supermask import MaskConfig
from supsup_core.nn.task_modules import TaskModule

__all__ = ["TaskBatchNorm2d", "ResNet18", "ResNet50"]


class TaskBatchNorm2d(TaskModule):
    """BatchNorm without affine parameters, with one set of running statistics per task.

    ``set_task(t)`` picks task ``t``'s statistics and ``add_task()`` appends a fresh set, so the
    model-level helpers in :mod:`supsup_core.nn.modes` switch it together with the masked layers. In a
    superposition or given-mask mode it keeps the statistics of the last task set. Its per-task state
    is ``running_mean``, ``running_var`` and ``num_batches_tracked``.
    """

    def __init__(self, num_features: int, *, num_tasks: int = 0) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.norms = nn.ModuleList()
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)  # follows .to(device)
        self._task_id = 0
        for _ in range(num_tasks):
            self.add_task()

    @property
    def num_tasks(self) -> int:
        return len(self.norms)

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """Append running statistics for one more task (fresh, or ``init`` from :meth:`task_state`) and return its id."""
        self.norms.append(nn.BatchNorm2d(self.num_features, affine=False).to(self._device_probe.device))
        if init is not None:
            self.norms[-1].load_state_dict(dict(init))
        return len(self.norms) - 1

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        """Running statistics of ``task_id`` (``running_mean``, ``running_var``, ``num_batches_tracked``)."""
        self._check(task_id)
        return {k: v.detach() for k, v in self.norms[task_id].state_dict().items()}

    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        """Append a task with the running statistics ``state`` (from :meth:`task_state`)."""
        return self.add_task(state)

    def set_task(self, task_id: int) -> None:
        """Normalise with the statistics of ``task_id``."""
        self._check(task_id)
        self._task_id = int(task_id)

    def _check(self, task_id: int) -> None:
        if not 0 <= task_id < len(self.norms):
            raise ValueError(f"task_id {task_id} is out of range: this BatchNorm holds {len(self.norms)} task(s); call add_task() first.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[self._task_id](x)


def _conv(cin: int, cout: int, k: int, stride: int, mask_config: MaskConfig, generator) -> MaskedConv2d:
    return MaskedConv2d(cin, cout, k, stride=stride, padding=k // 2, num_tasks=0, mask_config=mask_config, generator=generator)


class _Shortcut(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, mask_config: MaskConfig, generator) -> None:
        super().__init__()
        self.conv = _conv(cin, cout, 1, stride, mask_config, generator)
        self.bn = TaskBatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class _Block(nn.Module):
    """A residual block: masked conv + per-task BN units (ReLU between), plus a projected shortcut if needed.

    ``units`` lists ``(out_channels, kernel_size, stride)`` per conv: ``[(p, 3, s), (p, 3, 1)]`` is a
    basic block, ``[(p, 1, 1), (p, 3, s), (4p, 1, 1)]`` a bottleneck.
    """

    def __init__(self, cin: int, units: list[tuple[int, int, int]], mask_config: MaskConfig, generator) -> None:
        super().__init__()
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        channels, stride = cin, 1
        for cout, kernel, unit_stride in units:
            self.convs.append(_conv(channels, cout, kernel, unit_stride, mask_config, generator))
            self.bns.append(TaskBatchNorm2d(cout))
            channels, stride = cout, stride * unit_stride
        needs = stride != 1 or cin != channels
        self.shortcut = _Shortcut(cin, channels, stride, mask_config, generator) if needs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            out = bn(conv(out))
            if i < len(self.convs) - 1:
                out = F.relu(out)
        return F.relu(out + self.shortcut(x))


def _basic_units(planes: int, stride: int) -> list[tuple[int, int, int]]:
    return [(planes, 3, stride), (planes, 3, 1)]


def _bottleneck_units(planes: int, stride: int) -> list[tuple[int, int, int]]:
    return [(planes, 1, 1), (planes, 3, stride), (4 * planes, 1, 1)]


class _ResNet(nn.Module):
    """Stem, four stages (widths ``width · 1, 2, 4, 8``), global average pooling, masked linear head.

    Subclasses set ``units`` (the block's convolutions for given planes and stride) and ``depths``.
    Input: (N, C, H, W); output: (N, output_size).
    """

    units = staticmethod(_basic_units)
    depths: tuple[int, ...] = (2, 2, 2, 2)

    def __init__(self, *, in_channels: int, width: int, output_size: int, mask_config: MaskConfig,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.stem = _conv(in_channels, width, 3, 1, mask_config, generator)  # 3×3 stem: small images
        self.stem_bn = TaskBatchNorm2d(width)
        stages, cin = [], width
        for i, depth in enumerate(self.depths):
            planes = width * 2**i
            for j in range(depth):
                units = self.units(planes, 2 if (i > 0 and j == 0) else 1)
                stages.append(_Block(cin, units, mask_config, generator))
                cin = units[-1][0]
        self.blocks = nn.Sequential(*stages)
        self.head = MaskedLinear(cin, output_size, num_tasks=0, mask_config=mask_config, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.stem_bn(self.stem(x)))
        out = self.blocks(out)
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))


class ResNet18(_ResNet):
    """The reduced ResNet-18 of the continual-learning literature (basic blocks 2-2-2-2; ``width`` = 20)."""

    units, depths = staticmethod(_basic_units), (2, 2, 2, 2)


class ResNet50(_ResNet):
    """ResNet-50 (bottleneck blocks 3-4-6-3; ``width`` = 64 base channels) with a 3×3 stem for small images."""

    units, depths = staticmethod(_bottleneck_units), (3, 4, 6, 3)
