"""Switch every masked layer of a model at once: a task, a superposition of task masks, or given masks."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from supsup_core.nn.layers import MaskedLayer

__all__ = ["masked_layers", "num_tasks", "set_task", "set_superposition", "set_masks", "task_masks", "add_task"]


def masked_layers(model: nn.Module) -> dict[str, MaskedLayer]:
    """The model's masked layers by qualified name, in definition order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, MaskedLayer)}


def num_tasks(model: nn.Module) -> int:
    """Number of tasks the model holds (the same in every masked layer, checked)."""
    counts = {layer.num_tasks for layer in masked_layers(model).values()}
    if not counts:
        raise ValueError("this model has no masked layers; build it from supsup_core.nn.models")
    if len(counts) != 1:
        raise ValueError(f"masked layers disagree on the number of tasks: {sorted(counts)}; add tasks to all layers at once")
    return counts.pop()


def set_task(model: nn.Module, task_id: int) -> None:
    """Put every masked layer, and every other module with ``set_task`` (per-task BatchNorm), on ``task_id``."""
    for module in model.modules():
        if module is not model and hasattr(module, "set_task"):
            module.set_task(task_id)


def set_superposition(model: nn.Module, alphas: torch.Tensor) -> None:
    """Superpose the stored task masks with weights ``alphas`` (shape ``(num_tasks,)``) in every masked layer."""
    for layer in masked_layers(model).values():
        layer.set_superposition(alphas)


def set_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Give every masked layer its mask by name; names must match :func:`masked_layers` exactly."""
    layers = masked_layers(model)
    missing, extra = set(layers) - set(masks), set(masks) - set(layers)
    if missing or extra:
        raise ValueError(
            f"masks must name every masked layer exactly: missing {sorted(missing)}, unknown {sorted(extra)}. "
            f"The model's masked layers are {list(layers)}."
        )
    for name, layer in layers.items():
        layer.set_mask(masks[name])


def task_masks(model: nn.Module, task_id: int) -> dict[str, torch.Tensor]:
    """The binary masks of ``task_id`` by layer name (float 0/1 tensors, no grad)."""
    return {name: layer.task_mask(task_id) for name, layer in masked_layers(model).items()}


def add_task(model: nn.Module, init_scores: Mapping[str, torch.Tensor] | None = None, generator: torch.Generator | None = None) -> int:
    """Allocate one more task in every masked layer (optionally starting from given scores) and return its id."""
    ids = set()
    for name, layer in masked_layers(model).items():
        init = None if init_scores is None else init_scores[name]
        ids.add(layer.add_task(init, generator=generator))
    for module in model.modules():
        if not isinstance(module, MaskedLayer) and hasattr(module, "add_task") and module is not model:
            module.add_task()
    if len(ids) != 1:
        raise ValueError(f"masked layers returned different task ids {sorted(ids)}; the model is inconsistent")
    return ids.pop()
