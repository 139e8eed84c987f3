"""Parameter superposition as a method: a fully connected network of PSP layers, trained on every task in turn.

``psp-rotation``, ``psp-complex`` and ``psp-binary`` (Cheung et al. 2019) build LeNet or FC 1024 from
:class:`~supsup_core.baselines.psp.PSPLinear` layers (layer ``l`` draws its contexts with index ``l``).
Every weight and bias is shared and trains on every task, as in the reference code, with one optimizer
kept through the run; the contexts are fixed and never trained. A task stores nothing in the run directory
(its contexts follow from the run's seed); in memory it costs its contexts (N² float32 per layer for
rotation, N complex64 for complex, N float32 for binary, where N bits would do), nothing with powers.
Complex layers feed the real part of their output to the next ReLU (see :class:`PSPLinear`).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import torch
from torch import nn

from supsup_core.baselines.contexts import check_context_powers
from supsup_core.baselines.fc import build_fc_stack
from supsup_core.baselines.psp import PSPConv2d, PSPLinear
from supsup_core.nn.method import Method
from supsup_core.nn.models import FC_MODELS, ModelConfig

__all__ = ["PSP", "PSPRotation", "PSPComplex", "PSPBinary", "psp_layers"]


def psp_layers(model: nn.Module) -> list[PSPLinear | PSPConv2d]:
    """The PSP layers of ``model``, in definition order."""
    return [m for m in model.modules() if isinstance(m, (PSPLinear, PSPConv2d))]


class PSP(Method):
    """Parameter superposition with the context kind :attr:`kind`; subclasses name the kind."""

    kind: ClassVar[str]
    models = FC_MODELS
    full_accuracy_matrix = True
    trains_task_state = False
    train_defaults = {"optimizer": "rmsprop", "lr": 1e-4}  # the reference's PSP runs: RMSprop 1e-4

    def __init__(self, *, seed: int = 0, context_powers: bool = False) -> None:
        if context_powers:
            check_context_powers(self.kind)
        self.seed, self.context_powers = int(seed), bool(context_powers)
        self._future: dict[tuple[int, int], torch.Tensor | None] = {}  # (layer, task) -> context, see untrained_task_accuracy

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        self.check_model(config)
        return build_fc_stack(config, lambda a, b, i, last: PSPLinear(
            a, b, kind=self.kind, seed=self.seed, layer=i, powers=self.context_powers, generator=generator), generator)

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return list(model.parameters())

    def trains_shared(self, task_id: int) -> bool:
        return True

    def memory_bytes_per_task(self, model: nn.Module, task_id: int) -> int:
        """The task's contexts as held (0 with powers: one context serves every task)."""
        return sum(layer.context_nbytes() for layer in psp_layers(model))

    def untrained_task_accuracy(self, model: nn.Module, accuracy_of: Callable[[nn.Module, int], float],
                                task_ids: Sequence[int]) -> list[float]:
        """Each task's context over the current weights: the contexts ``model`` lacks are appended for the
        evaluation and removed after it. Each is drawn once per run and kept until its task is trained, so the
        run holds one context per task at any time, as it does once every task is trained."""
        if not task_ids:
            return []
        layers = psp_layers(model)
        start = layers[0].num_tasks
        for key in [key for key in self._future if key[1] < start]:  # trained since: the model holds them
            del self._future[key]
        added = max(task_ids) + 1 - start
        try:
            for index, layer in enumerate(layers):
                for task_id in range(start, start + added):
                    if (index, task_id) not in self._future:
                        self._future[index, task_id] = layer.draw_context(task_id)
                    layer.append_context(self._future[index, task_id])
            return [accuracy_of(model, t) for t in task_ids]
        finally:
            for layer in layers:
                layer.pop_tasks(layer.num_tasks - start)


class PSPRotation(PSP):
    """PSP with a Haar-random orthogonal N×N context per task and layer (``psp-rotation``)."""

    name = "psp-rotation"
    kind = "rotation"


class PSPComplex(PSP):
    """PSP with unit-modulus complex phases per task and layer, complex weights (``psp-complex``)."""

    name = "psp-complex"
    kind = "complex"


class PSPBinary(PSP):
    """PSP with ±1 signs per task and layer (``psp-binary``)."""

    name = "psp-binary"
    kind = "binary"
