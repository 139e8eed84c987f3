"""Switch every task module of a model at once: a task, a superposition of task masks, or given masks."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from supsup_core.nn.layers import MaskedLayer
from supsup_core.nn.task_modules import TaskModule, task_modules

__all__ = ["masked_layers", "other_task_modules", "num_tasks", "set_task", "set_superposition", "set_masks", "task_masks", "add_task",
           "task_parameters", "freeze_task"]


def masked_layers(model: nn.Module) -> dict[str, MaskedLayer]:
    """The model's masked layers by qualified name, in definition order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, MaskedLayer)}


def other_task_modules(model: nn.Module) -> dict[str, TaskModule]:
    """The task modules of ``model`` that are not masked layers (e.g. per-task BatchNorm statistics).

    Their per-task state is no mask, so a superposition of masks (task inference) or a mask memory
    (HopSupSup) cannot stand in for it.
    """
    return {name: module for name, module in task_modules(model).items() if not isinstance(module, MaskedLayer)}


def num_tasks(model: nn.Module) -> int:
    """Number of tasks the model holds (the same in every task module, checked)."""
    counts = {module.num_tasks for module in task_modules(model).values()}
    if not counts:
        raise ValueError("this model has no task modules (masked layers); build it from supsup_core.nn.models")
    if len(counts) != 1:
        raise ValueError(f"task modules disagree on the number of tasks: {sorted(counts)}; add tasks to all of them at once")
    return counts.pop()


def set_task(model: nn.Module, task_id: int) -> None:
    """Put every task module (masked layers, per-task BatchNorm) on ``task_id``."""
    for module in task_modules(model).values():
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


def add_task(model: nn.Module, init: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
             generator: torch.Generator | None = None) -> int | None:
    """Allocate one more task in every task module and return its id (None for a model with no task modules).

    ``init`` maps module names to the state a module starts from (e.g. ``{"layers.0": {"scores": t}}``
    for transfer); a module it does not name draws its own from ``generator``.
    """
    modules = task_modules(model)
    if not modules:  # a model with no per-task state (one network fine-tuned through every task)
        return None
    ids = {module.add_task(None if init is None else init.get(name), generator=generator) for name, module in modules.items()}
    if len(ids) != 1:
        raise ValueError(f"task modules returned different task ids {sorted(ids)}; the model is inconsistent")
    return ids.pop()


def task_parameters(model: nn.Module, task_id: int) -> list[nn.Parameter]:
    """The parameters that training ``task_id`` updates, over every task module in definition order."""
    return [p for module in task_modules(model).values() for p in module.task_parameters(task_id)]


def freeze_task(model: nn.Module, task_id: int) -> None:
    """Freeze ``task_id`` in every task module (a supermask keeps its binary mask and drops its scores)."""
    for module in task_modules(model).values():
        module.freeze_task(task_id)
