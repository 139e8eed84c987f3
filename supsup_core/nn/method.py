"""A continual-learning method: the model it builds and what training one task touches; SupSup is the first."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.nn.task_modules import task_modules

__all__ = ["Method", "SupSup", "SUPERPOSITION", "EXHAUSTIVE_ENTROPY"]

SUPERPOSITION = "superposition"
"""``Method.task_inference`` of SupSup: the gradient of the output entropy over superposed masks."""
EXHAUSTIVE_ENTROPY = "exhaustive-entropy"
"""``Method.task_inference`` where every task is tried and the lowest mean output entropy wins."""


class Method(ABC):
    """How one method trains a run, over models made of task modules (:mod:`supsup_core.nn.task_modules`).

    The trainer (:func:`supsup_core.train.continual.train_run`) calls :meth:`build_model` once, then per
    task :meth:`start_task`, trains :meth:`task_parameters` (with a fresh optimizer per task) and, while
    :meth:`trains_shared` says so, :meth:`shared_parameters` (with one optimizer kept across tasks, saved
    with the shared weights at every task boundary), and calls :meth:`finish_task`; the run directory
    stores each task module's ``task_state``. A new method subclasses this, and is named in the registry
    :data:`supsup_core.train.methods.METHODS`: no branch in the trainer knows it.

    Parameters
    ----------
    seed : int
        The run's seed (methods that draw fixed per-task state from it, as PSP its contexts).
    context_powers : bool
        PSP only: task ``t`` uses ``C^(t+1)`` of one context; other methods refuse it.

    Attributes
    ----------
    name : str
        The registry key (``supsup train --method NAME``), recorded in the run's config.json.
    starts_from_scores : bool
        Whether a task can start at the mean of earlier tasks' saved scores (``--transfer``) and the
        scores can be saved (``--save-scores``).
    uses_masks : bool
        Whether the model's task state is supermasks: task inference by superposing masks (GN, NN) and
        the Hopfield memory (HopSupSup) apply only then.
    train_defaults : mapping
        The reference code's :class:`~supsup_core.train.training.TrainConfig` fields for this method
        (optimizer, lr, shared_lr), used where the user gives none.
    models : tuple of str, optional
        The architectures the method builds (None: every model of :data:`supsup_core.nn.models.MODELS`).
    trains_task_state : bool
        Whether a task trains state of its own (:meth:`task_parameters`); PSP and fine-tuning train only
        shared weights.
    full_accuracy_matrix : bool
        Whether a task not trained yet has an accuracy (:meth:`untrained_task_accuracy`), so the run records
        the full matrix, the accuracies before training and forward transfer.
    task_inference : str, optional
        How a task is found without its id (GN evaluation): :data:`SUPERPOSITION` (SupSup: the gradient of
        the output entropy over superposed masks), :data:`EXHAUSTIVE_ENTROPY` (every task tried, lowest
        mean entropy wins: BatchEnsemble's reference), or None (the method is evaluated with task ids only).
    """

    name: ClassVar[str]
    starts_from_scores: ClassVar[bool] = False
    uses_masks: ClassVar[bool] = False
    train_defaults: ClassVar[Mapping[str, Any]] = {}
    models: ClassVar[tuple[str, ...] | None] = None
    task_inference: ClassVar[str | None] = None
    trains_task_state: ClassVar[bool] = True
    full_accuracy_matrix: ClassVar[bool] = False

    def __init__(self, *, seed: int = 0, context_powers: bool = False) -> None:
        if context_powers:
            raise ValueError(f"--context-powers applies to psp-rotation and psp-complex only, not to {self.name}; drop it.")
        self.seed = int(seed)

    def check_model(self, config: ModelConfig) -> None:
        """Raise ``ValueError`` if the method cannot build ``config``'s architecture."""
        if self.models is not None and config.name not in self.models:
            raise ValueError(f"method {self.name!r} is built for the models {', '.join(self.models)}; got {config.name!r}. "
                             f"Use --model {self.models[0]}, or --method supsup for {config.name}.")

    @abstractmethod
    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        """The model of ``config`` with its fixed weights drawn from ``generator`` (``config.num_tasks`` tasks)."""

    def start_task(self, model: nn.Module, *, init: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                   generator: torch.Generator | None = None) -> int | None:
        """Allocate the next task's state in every task module (from ``init`` where given); return its id."""
        return modes.add_task(model, init, generator)

    def task_parameters(self, model: nn.Module, task_id: int) -> list[nn.Parameter]:
        """What training ``task_id`` updates that belongs to that task alone (a fresh optimizer each task)."""
        return modes.task_parameters(model, task_id)

    def shared_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The weights every task shares that training updates (none: SupSup's weights are fixed)."""
        return []

    def trains_shared(self, task_id: int) -> bool:
        """Whether training ``task_id`` updates :meth:`shared_parameters` (never, by default)."""
        return False

    def finish_task(self, model: nn.Module, task_id: int) -> None:
        """Make ``task_id`` final once it is trained (its state is then written to the run)."""
        modes.freeze_task(model, task_id)

    def memory_bytes_per_task(self, model: nn.Module, task_id: int) -> int:
        """Bytes the method holds in memory for ``task_id`` beyond the shared weights.

        Default: the task's ``task_state`` in every task module, boolean tensors counted as packed bits
        (SupSup: d/8 for d mask bits, plus per-task BatchNorm statistics where the model has them).
        """
        total = 0
        for module in task_modules(model).values():
            for value in module.task_state(task_id).values():
                total += math.ceil(value.numel() / 8) if value.dtype == torch.bool else value.numel() * value.element_size()
        return total

    def shared_bytes(self, model: nn.Module) -> int:
        """Bytes of the state all tasks share (the model's ``state_dict`` with no task allocated)."""
        return sum(v.numel() * v.element_size() for v in model.state_dict().values())

    def untrained_task_accuracy(self, model: nn.Module, accuracy_of: Callable[[nn.Module, int], float],
                                task_ids: Sequence[int]) -> list[float] | None:
        """Accuracy of tasks not trained yet, by ``accuracy_of(model, task_id)`` with the weights as they are
        now, where the method gives such a task a meaning (:attr:`full_accuracy_matrix`; PSP: its context
        over the current weights; fine-tuning: the one network). ``model`` must come back as it was. None (the
        default) where the method has none: SupSup has no mask for a task before training it.
        """
        return None


class SupSup(Method):
    """Supermasks in Superposition: fixed random weights, one binary supermask per task (EdgePopup).

    Training a task trains only its scores in every masked layer; finishing it keeps the binary mask and
    drops the scores, so earlier tasks can never change.
    """

    name = "supsup"
    starts_from_scores = True
    uses_masks = True
    task_inference = SUPERPOSITION

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        return build_model(config, generator)
