"""BatchEnsemble as the SupSup paper runs it: one weight trained on the first task and then frozen, and a
rank-one pair of fast weights per task, ``W_t = W ⊙ (s_t r_tᵀ)``.

The product is never formed: a layer computes ``s_t ⊙ (W (r_t ⊙ x))``. Fast weights start as random ±1
signs drawn from the task's generator. The reference's settings are the method's defaults: Adam, lr 1e-2
for the fast weights, lr 1e-4 for ``W`` (``shared_lr``) while it trains on task 0. A task stores its
factors (``r`` and ``s`` per layer, float32: 4·(in + out) bytes a layer). Without the task id, the task is
found by exhaustive search, the task whose factors give the lowest mean output entropy
(:mod:`supsup_core.infer.exhaustive`).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.baselines.fc import build_fc_stack
from supsup_core.checks import check_int
from supsup_core.nn.method import Method
from supsup_core.nn.models import FC_MODELS, ModelConfig
from supsup_core.nn.task_modules import TaskModule

__all__ = ["BatchEnsembleLinear", "BatchEnsemble", "sign_init"]


def sign_init(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Signs uniform on {−1, +1}, float32 of shape ``(n,)`` (the reference's fast-weight initialisation)."""
    return torch.randint(0, 2, (n,), generator=generator).to(torch.float32) * 2 - 1


class BatchEnsembleLinear(TaskModule):
    """A shared weight ``W`` (out, in), no bias, and per task fast weights ``r`` (in,) and ``s`` (out,).

    ``forward(x) = s_t ⊙ (W (r_t ⊙ x))`` for the current task ``t``. ``W`` is initialised Kaiming normal
    (std sqrt(2/in), the reference's ``kaiming_normal``) from ``generator``.
    """

    def __init__(self, in_features: int, out_features: int, *, num_tasks: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_int(in_features, "in_features", minimum=1)
        check_int(out_features, "out_features", minimum=1)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=generator) * math.sqrt(2 / in_features))
        self.r, self.s = nn.ParameterList(), nn.ParameterList()
        self._task_id = 0
        for _ in range(num_tasks):
            self.add_task(generator=generator)

    @property
    def num_tasks(self) -> int:
        return len(self.r)

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """A new task's fast weights: ``init`` (keys ``r``, ``s``) or random signs from ``generator``."""
        if init is None:
            init = {"r": sign_init(self.in_features, generator), "s": sign_init(self.out_features, generator)}
        return self._append(init, trainable=True)

    def _append(self, state: Mapping[str, torch.Tensor], *, trainable: bool) -> int:
        if set(state) != {"r", "s"}:
            raise ValueError(f"a BatchEnsemble task's state holds 'r' and 's'; got {sorted(state)}. The file belongs to another method.")
        if tuple(state["r"].shape) != (self.in_features,) or tuple(state["s"].shape) != (self.out_features,):
            raise ValueError(f"fast weights of shapes {tuple(state['r'].shape)}/{tuple(state['s'].shape)} do not fit a "
                             f"{self.in_features}->{self.out_features} layer; the file belongs to another run.")
        device = self.weight.device
        self.r.append(nn.Parameter(state["r"].detach().to(device, torch.float32).clone(), requires_grad=trainable))
        self.s.append(nn.Parameter(state["s"].detach().to(device, torch.float32).clone(), requires_grad=trainable))
        return len(self.r) - 1

    def set_task(self, task_id: int) -> None:
        self._check_task(task_id)
        self._task_id = int(task_id)

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        self._check_task(task_id)
        return {"r": self.r[task_id].detach(), "s": self.s[task_id].detach()}

    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        return self._append(state, trainable=False)

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        self._check_task(task_id)
        return [p for p in (self.r[task_id], self.s[task_id]) if p.requires_grad]

    def freeze_task(self, task_id: int) -> None:
        self._check_task(task_id)
        self.r[task_id].requires_grad_(False)
        self.s[task_id].requires_grad_(False)

    def _check_task(self, task_id: int) -> None:
        if not 0 <= task_id < self.num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: this layer holds {self.num_tasks} task(s); call add_task() first.")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self._task_id
        return F.linear(x * self.r[t], self.weight) * self.s[t]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, tasks={self.num_tasks}"


class BatchEnsemble(Method):
    """BatchEnsemble (``batchensemble``): ``W`` trains with task 0's factors, then only factors train."""

    name = "batchensemble"
    models = FC_MODELS
    task_inference = "exhaustive-entropy"
    train_defaults = {"optimizer": "adam", "lr": 1e-2, "shared_lr": 1e-4}  # the reference's LeNet/FC runs

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: BatchEnsembleLinear(a, b, generator=generator))

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return [m.weight for m in model.modules() if isinstance(m, BatchEnsembleLinear)]

    def trains_shared(self, task_id: int) -> bool:
        return task_id == 0
