"""The task-module protocol: what a module holding per-task state offers, and the one way to find them."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Mapping

import torch
from torch import nn

__all__ = ["TaskModule", "task_modules"]


class TaskModule(nn.Module, ABC):
    """A module with one piece of state per task (a supermask's scores, BatchNorm statistics, a context).

    Methods share this protocol so that training, run directories and inference handle every method's
    per-task state the same way: a module adds a task, switches to it, hands out its state for saving, and
    takes saved state back as a frozen task. Subclass it; :func:`task_modules` finds the instances.
    """

    @property
    @abstractmethod
    def num_tasks(self) -> int:
        """Number of tasks this module holds state for."""

    @abstractmethod
    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """Allocate trainable state for one more task and return its id.

        ``init`` starts the task at given state (keys as the module documents them, e.g. ``"scores"``);
        otherwise the module's own initialisation draws from ``generator``.
        """

    @abstractmethod
    def set_task(self, task_id: int) -> None:
        """Use task ``task_id``'s state in the forward pass."""

    @abstractmethod
    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        """The state of ``task_id`` that a run directory keeps, by key (no grad).

        Boolean tensors are stored bit-packed, others as they are.
        """

    @abstractmethod
    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        """Append a task from :meth:`task_state`'s output, frozen (not trainable); return its id."""

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        """The parameters that training ``task_id`` updates (none by default)."""
        return []

    def freeze_task(self, task_id: int) -> None:
        """Stop ``task_id`` from being trainable, keeping only what :meth:`task_state` returns (a no-op by default)."""


def task_modules(model: nn.Module) -> dict[str, TaskModule]:
    """The modules of ``model`` that hold per-task state, by qualified name, in definition order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, TaskModule) and module is not model}
