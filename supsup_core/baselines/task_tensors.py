"""A task module whose state per task is a few float tensors of fixed shapes (a separate layer's weight and
bias, BatchEnsemble's fast weights): the protocol written once for all of them."""
from __future__ import annotations

from typing import ClassVar, Mapping

import torch
from torch import nn

from supsup_core.nn.task_modules import TaskModule

__all__ = ["TaskTensors"]


class TaskTensors(TaskModule):
    """Keeps, per task, one float32 parameter for each key of :attr:`state_lists`, in a ``ParameterList``
    named by that mapping (``{"weight": "weights"}``: task ``t``'s weight is ``self.weights[t]``).

    Subclasses set :attr:`state_lists`, give :meth:`state_shapes` and :meth:`initial_state` (a new task's
    tensors drawn from a generator), and use ``self.task_tensor(key)`` in ``forward``. A task trains until
    :meth:`freeze_task`; tasks added from saved state are frozen.
    """

    state_lists: ClassVar[Mapping[str, str]]

    def __init__(self) -> None:
        super().__init__()
        for attribute in self.state_lists.values():
            setattr(self, attribute, nn.ParameterList())
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)  # follows .to(device)
        self._task_id = 0

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each key's tensor."""
        raise NotImplementedError

    def initial_state(self, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """A new task's tensors, drawn from ``generator``."""
        raise NotImplementedError

    def _list(self, key: str) -> nn.ParameterList:
        return getattr(self, self.state_lists[key])

    @property
    def num_tasks(self) -> int:
        return len(self._list(next(iter(self.state_lists))))

    def task_tensor(self, key: str) -> nn.Parameter:
        """The current task's tensor ``key``."""
        return self._list(key)[self._task_id]

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """A new trainable task from ``init`` (keys of :attr:`state_lists`) or :meth:`initial_state`; returns its id."""
        return self._append(self.initial_state(generator) if init is None else init, trainable=True)

    def _append(self, state: Mapping[str, torch.Tensor], *, trainable: bool) -> int:
        shapes = self.state_shapes()
        name = type(self).__name__
        if set(state) != set(shapes):
            raise ValueError(f"a {name} task's state holds {sorted(shapes)}; got {sorted(state)}. The file belongs to another method.")
        wrong = {key: tuple(value.shape) for key, value in state.items() if tuple(value.shape) != shapes[key]}
        if wrong:
            raise ValueError(f"task state of shapes {wrong} does not fit this {name} (expected {shapes}); the file belongs "
                             "to another run.")
        device = self._device_probe.device
        for key, value in state.items():
            self._list(key).append(nn.Parameter(value.detach().to(device, torch.float32).clone(), requires_grad=trainable))
        return self.num_tasks - 1

    def set_task(self, task_id: int) -> None:
        self._check_task(task_id)
        self._task_id = int(task_id)

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        self._check_task(task_id)
        return {key: self._list(key)[task_id].detach() for key in self.state_lists}

    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        return self._append(state, trainable=False)

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        self._check_task(task_id)
        return [p for key in self.state_lists if (p := self._list(key)[task_id]).requires_grad]

    def freeze_task(self, task_id: int) -> None:
        self._check_task(task_id)
        for key in self.state_lists:
            self._list(key)[task_id].requires_grad_(False)

    def _check_task(self, task_id: int) -> None:
        if not 0 <= task_id < self.num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: this layer holds {self.num_tasks} task(s); call add_task() first.")
