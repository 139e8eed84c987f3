"""The bounds SupSup is measured between: one network fine-tuned through every task (it forgets), a head
per task on a fine-tuned trunk, and a separate full network per task (a model's cost per task)."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.baselines.fc import build_fc_stack, uniform
from supsup_core.baselines.task_tensors import TaskTensors
from supsup_core.checks import check_int
from supsup_core.nn.method import Method
from supsup_core.nn.models import FC_MODELS, ModelConfig

__all__ = ["TaskLinear", "plain_linear", "FineTune", "FineTuneMultiHead", "Separate"]


def plain_linear(in_features: int, out_features: int, generator: torch.Generator | None = None) -> nn.Linear:
    """``nn.Linear`` initialised as torch does (weight and bias uniform in ±1/sqrt(in)), but from ``generator``."""
    layer = nn.Linear(in_features, out_features)
    bound = 1 / math.sqrt(in_features)
    with torch.no_grad():
        layer.weight.copy_(uniform((out_features, in_features), bound, generator))
        layer.bias.copy_(uniform((out_features,), bound, generator))
    return layer


class TaskLinear(TaskTensors):
    """A linear layer with its own weight and bias per task (a separate network's layer, or a task's head).

    Task state: ``weight`` (out, in) and ``bias`` (out,), float32 (``self.weights[t]``, ``self.biases[t]``);
    a new task is initialised as ``nn.Linear`` is (uniform in ±1/sqrt(in)) from the task's generator.
    """

    state_lists = {"weight": "weights", "bias": "biases"}

    def __init__(self, in_features: int, out_features: int, *, num_tasks: int = 0) -> None:
        check_int(in_features, "in_features", minimum=1)
        check_int(out_features, "out_features", minimum=1)
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        for _ in range(num_tasks):
            self.add_task()

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}

    def initial_state(self, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        bound = 1 / math.sqrt(self.in_features)
        return {key: uniform(shape, bound, generator) for key, shape in self.state_shapes().items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.task_tensor("weight"), self.task_tensor("bias"))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, tasks={self.num_tasks}"


class FineTune(Method):
    """The lower bound: one network (plain linear layers) trained on every task in turn, which forgets.

    Nothing is kept per task; every weight is shared and trains on every task, with one optimizer for the
    whole run. A task not trained yet is the same network on that task's data, so the full accuracy
    matrix (and forward transfer) is defined.
    """

    name = "finetune"
    models = FC_MODELS
    full_accuracy_matrix = True
    trains_task_state = False

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: plain_linear(a, b, generator), generator)

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return list(model.parameters())

    def trains_shared(self, task_id: int) -> bool:
        return True

    def untrained_task_accuracy(self, model: nn.Module, accuracy_of: Callable[[nn.Module, int], float],
                                task_ids: Sequence[int]) -> list[float]:
        return [accuracy_of(model, t) for t in task_ids]


class FineTuneMultiHead(Method):
    """Fine-tuning with a separate output layer (head) per task: the trunk is shared and trains on every
    task (and forgets); each task keeps its own head (its ``task_state``). The multi-head baseline of
    PSP's output-interference experiment."""

    name = "finetune-multihead"
    models = FC_MODELS

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: TaskLinear(a, b) if last else plain_linear(a, b, generator),
                              generator)

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for layer in model.layers[:-1] for p in layer.parameters()]

    def trains_shared(self, task_id: int) -> bool:
        return True


class Separate(Method):
    """The upper bound: a fresh full network per task (every layer a :class:`TaskLinear`), drawn from the
    task's generator and trained on that task alone. Nothing is shared and nothing is forgotten; it
    costs a whole model per task."""

    name = "separate"
    models = FC_MODELS

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: TaskLinear(a, b), generator)
