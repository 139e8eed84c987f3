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

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.baselines.contexts import binary_context
from supsup_core.baselines.fc import build_fc_stack
from supsup_core.baselines.task_tensors import TaskTensors
from supsup_core.checks import check_int
from supsup_core.nn.method import EXHAUSTIVE_ENTROPY, Method
from supsup_core.nn.models import FC_MODELS, ModelConfig

__all__ = ["BatchEnsembleLinear", "BatchEnsemble", "sign_init"]


def sign_init(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Signs uniform on {−1, +1}, float32 of shape ``(n,)`` (the reference's fast-weight initialisation; the
    same draw as a binary PSP context)."""
    return binary_context(n, generator)


class BatchEnsembleLinear(TaskTensors):
    """A shared weight ``W`` (out, in), no bias, and per task fast weights ``r`` (in,) and ``s`` (out,).

    ``forward(x) = s_t ⊙ (W (r_t ⊙ x))`` for the current task ``t`` (``self.r[t]``, ``self.s[t]``). ``W`` is
    initialised Kaiming normal (std sqrt(2/in), the reference's ``kaiming_normal``) from ``generator``.
    """

    state_lists = {"r": "r", "s": "s"}

    def __init__(self, in_features: int, out_features: int, *, num_tasks: int = 0,
                 generator: torch.Generator | None = None) -> None:
        check_int(in_features, "in_features", minimum=1)
        check_int(out_features, "out_features", minimum=1)
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.randn(out_features, in_features, generator=generator) * math.sqrt(2 / in_features))
        for _ in range(num_tasks):
            self.add_task(generator=generator)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"r": (self.in_features,), "s": (self.out_features,)}

    def initial_state(self, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        return {"r": sign_init(self.in_features, generator), "s": sign_init(self.out_features, generator)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.task_tensor("r"), self.weight) * self.task_tensor("s")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, tasks={self.num_tasks}"


class BatchEnsemble(Method):
    """BatchEnsemble (``batchensemble``): ``W`` trains with task 0's factors, then only factors train."""

    name = "batchensemble"
    models = FC_MODELS
    task_inference = EXHAUSTIVE_ENTROPY
    train_defaults = {"optimizer": "adam", "lr": 1e-2, "shared_lr": 1e-4}  # the reference's LeNet/FC runs

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: BatchEnsembleLinear(a, b, generator=generator), generator)

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return [m.weight for m in model.modules() if isinstance(m, BatchEnsembleLinear)]

    def trains_shared(self, task_id: int) -> bool:
        return task_id == 0
