"""Recover one task's masks from a run's fixed weights, its mask store and unlabelled images of the task.

:func:`recover_task` needs no task id and no label: it descends on z, a real-valued relaxation of the
±1 pattern, with the output entropy of unlabelled batches and the memory (one of the
:data:`~supsup_core.hopsupsup.methods.RECOVERY_METHODS`), starting from the store's mean pattern.
True masks, when a caller has them, are only used to score the result (see ``report``).
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Mapping, NamedTuple

import torch
from torch import nn

from hopfield_masks import HopfieldMemory, MaskLayout
from hopfield_masks.recovery import RecoveryResult
from supsup_core.checks import check_choice, check_int, check_output_size
from supsup_core.data.streams import TaskData
from supsup_core.hopsupsup.encode import check_store_matches
from supsup_core.hopsupsup.methods import RECOVERY_METHODS, Entropy, MethodConfig
from supsup_core.infer.objectives import entropy as output_entropy
from supsup_core.nn import modes
from supsup_core.train.training import accuracy

__all__ = ["RECOVERY_STREAM", "TaskRecovery", "recovery_batches", "recover_task", "masked_accuracy"]

RECOVERY_STREAM = 2
"""Purpose key of the recovery batches' random streams: a run's recovery (``recover_run``) orders task t's
test images with ``seeded_generator(seed, t, RECOVERY_STREAM)``."""


class TaskRecovery(NamedTuple):
    """One recovered task.

    state : Tensor (d,), the recovered ±1 pattern over the layout
    masks : dict of layer name to {0,1} float Tensor, the recovered masks
    steps : int, descent steps taken (over all attempts)
    seconds : float, wall time of the recovery
    result : RecoveryResult, with the per-step trace (of the last attempt)
    attempts : int, descents run: 1, plus the steered method's retries out of spurious states
    """

    state: torch.Tensor
    masks: dict[str, torch.Tensor]
    steps: int
    seconds: float
    result: RecoveryResult
    attempts: int = 1


def recovery_batches(data: TaskData, *, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of the images of ``data`` (labels are dropped: recovery never sees them).

    Parameters
    ----------
    data : TaskData
        The task's images ``x`` of shape (n, *input_shape); its labels are not read.
    batch_size : int >= 1
        Images per batch (at most n: a smaller set gives batches of all n).
    generator : torch.Generator
        Orders the images, a new permutation each pass (e.g. ``seeded_generator(seed, task_id, RECOVERY_STREAM)``).

    Yields
    ------
    Tensor of shape (batch_size, *input_shape)
    """
    check_int(batch_size, "batch_size", minimum=1, fix="Give the number of unlabelled images per step, e.g. 64.")
    n = len(data.x)
    if n == 0:
        raise ValueError("data holds no images, so there is nothing to recover from; pass the task's test set.")
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator).to(data.x.device)
        for lo in range(0, n - batch_size + 1, batch_size):
            yield data.x.index_select(0, order[lo: lo + batch_size])


def _entropy_of(model: nn.Module, layout: MaskLayout, real_outputs: int) -> Entropy:
    def entropy(state: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        # ±1 (or soft [-1, 1]) state -> {0,1} (or [0,1]) masks per layer
        modes.set_masks(model, layout.unflatten((state + 1.0) / 2.0))
        logits = model(images)
        check_output_size(logits.shape[-1], real_outputs)
        return output_entropy(logits, real_outputs)

    return entropy


def recover_task(model: nn.Module, memory: HopfieldMemory, batches: Iterable[torch.Tensor], *, real_outputs: int,
                 method: str = "steered", config: MethodConfig | None = None) -> TaskRecovery:
    """Recover one task's masks from unlabelled batches and the memory alone.

    Parameters
    ----------
    model : nn.Module
        The run's model with its fixed weights (its own masks, if any, are not used).
    memory : HopfieldMemory
        The store encoded from the run.
    batches : iterable of Tensor (B, *input_shape)
        Unlabelled images of the task to recover.
    real_outputs : int
        Number of class outputs the entropy is taken over.
    method : str
        A key of :data:`~supsup_core.hopsupsup.methods.RECOVERY_METHODS`: "steered" (the default, made
        for the pseudo-inverse rule) or the paper's annealed "reference" descent.
    config : the method's config type (SteerConfig for "steered", RecoveryConfig for "reference"), optional
        Default: the config type's defaults. With a memory that keeps its patterns (implicit backends),
        the steered method retries when the recall ends on no stored pattern, ``config.retries`` times
        at most (see ``SteerConfig.retry``).

    Returns
    -------
    TaskRecovery

    Raises
    ------
    ValueError
        An unknown method, a bad ``real_outputs``, or a store that does not fit the model.
    TypeError
        A config of another method's type.
    """
    check_choice(method, "method", RECOVERY_METHODS)
    entry = RECOVERY_METHODS[method]
    config = entry.config_type() if config is None else config
    if not isinstance(config, entry.config_type):
        raise TypeError(f"method {method!r} takes a {entry.config_type.__name__}; got {type(config).__name__}. "
                        f"Build it with recovery_config({method!r}, ...).")
    check_int(real_outputs, "real_outputs", minimum=1, fix="Give the number of classes per task, e.g. 10.")
    layout = check_store_matches(memory, model)
    entropy = _entropy_of(model, layout, real_outputs)
    init = memory.mean_pattern.detach().float()  # z starts at the uniform superposition of the stored patterns
    batches = iter(batches)  # a list works too, and retries continue where the last descent stopped
    start = time.perf_counter()
    model.eval()
    found = entry.descend(memory, entropy, init, batches, config)
    seconds = time.perf_counter() - start
    state = found.result.state.detach()
    masks = {name: m.detach() for name, m in layout.unflatten((state + 1.0) / 2.0).items()}
    return TaskRecovery(state, masks, found.steps, seconds, found.result, found.attempts)


def masked_accuracy(model: nn.Module, masks: Mapping[str, torch.Tensor], data: TaskData, *, num_classes: int,
                    batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` with the given layer ``masks`` (argmax over the first ``num_classes`` outputs).

    Parameters
    ----------
    model : nn.Module
    masks : mapping layer name -> {0,1} Tensor of the layer's mask shape
    data : TaskData
    num_classes : int
    batch_size : int

    Returns
    -------
    float in [0, 1]
    """
    modes.set_masks(model, {name: m.float() for name, m in masks.items()})
    return accuracy(model, data, num_classes=num_classes, batch_size=batch_size)
