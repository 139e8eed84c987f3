"""A continual-learning method: the model it builds and what training one task touches; SupSup is the first."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Mapping

import torch
from torch import nn

from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model

__all__ = ["Method", "SupSup"]


class Method(ABC):
    """How one method trains a run, over models made of task modules (:mod:`supsup_core.nn.task_modules`).

    The trainer (:func:`supsup_core.train.continual.train_run`) calls :meth:`build_model` once, then per
    task :meth:`start_task`, trains :meth:`task_parameters` on the task's data, and :meth:`finish_task`;
    the run directory stores each task module's ``task_state``. A new method subclasses this, and is named
    in the registry :data:`supsup_core.train.methods.METHODS`: no branch in the trainer knows it.

    Attributes
    ----------
    name : str
        The registry key (``supsup train --method NAME``), recorded in the run's config.json.
    starts_from_scores : bool
        Whether a task can start at the mean of earlier tasks' saved scores (``--transfer``) and the
        scores can be saved (``--save-scores``).
    """

    name: ClassVar[str]
    starts_from_scores: ClassVar[bool] = False

    @abstractmethod
    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        """The model of ``config`` with its fixed weights drawn from ``generator`` (``config.num_tasks`` tasks)."""

    def start_task(self, model: nn.Module, *, init: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
                   generator: torch.Generator | None = None) -> int:
        """Allocate the next task's state in every task module (from ``init`` where given); return its id."""
        return modes.add_task(model, init, generator)

    def task_parameters(self, model: nn.Module, task_id: int) -> list[nn.Parameter]:
        """What training ``task_id`` updates."""
        return modes.task_parameters(model, task_id)

    def finish_task(self, model: nn.Module, task_id: int) -> None:
        """Make ``task_id`` final once it is trained (its state is then written to the run)."""
        modes.freeze_task(model, task_id)


class SupSup(Method):
    """Supermasks in Superposition: fixed random weights, one binary supermask per task (EdgePopup).

    Training a task trains only its scores in every masked layer; finishing it keeps the binary mask and
    drops the scores, so earlier tasks can never change.
    """

    name = "supsup"
    starts_from_scores = True

    def build_model(self, config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
        return build_model(config, generator)
