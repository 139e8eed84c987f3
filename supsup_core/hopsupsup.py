"""HopSupSup: write a run's task masks into a Hopfield memory, and recover them from unlabelled data.

After training, :func:`encode_run` stores every task's masks (all masked layers, flattened by a
:class:`~hopfield_masks.MaskLayout`) as ±1 patterns in one memory. At inference :func:`recover_task`
needs only the fixed weights and that memory: it descends on real scores with the output entropy of
unlabelled test batches (no task id, no labels) and the memory's energy. True masks, when given, are
used only to score the result.
"""
from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import torch
from torch import nn

from hopfield_masks import HopfieldMemory, MaskLayout, default_backend, make_memory, masks_to_patterns
from hopfield_masks.implicit import PackedMemory
from hopfield_masks.recovery import RecoveryConfig, RecoveryResult, SteerConfig, anneal, steer
from supsup_core import modes
from supsup_core.objectives import entropy as output_entropy
from supsup_core.runs import RunDirectory
from supsup_core.streams import TaskData
from supsup_core.training import accuracy

__all__ = [
    "RECOVERY_METHODS",
    "TaskRecovery",
    "mask_layout",
    "encode_run",
    "check_store_matches",
    "recovery_batches",
    "recover_task",
    "masked_accuracy",
]

RECOVERY_METHODS = ("reference", "steered")
"""``reference``: the paper's annealed descent; ``steered``: the memory-projected descent + recall."""


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


def mask_layout(model: nn.Module) -> MaskLayout:
    """The layout (names and mask shapes) of the model's masked layers."""
    layers = modes.masked_layers(model)
    if not layers:
        raise ValueError("this model has no masked layers, so there is nothing to encode")
    return MaskLayout(tuple(layers), tuple(layer.mask_shape for layer in layers.values()))


def _check_maskable(run: RunDirectory, model: nn.Module) -> None:
    per_task = [name for name, m in model.named_modules() if m is not model and hasattr(m, "task_state")]
    if per_task:
        raise ValueError(
            f"the run's model keeps per-task statistics in {per_task}, which a mask memory cannot hold; "
            "HopSupSup needs a model whose tasks differ by masks alone (e.g. --model bnnet)."
        )


def encode_run(run: RunDirectory, *, rule: str, backend: str | None = None, device: torch.device | str = "cpu",
               num_tasks: int | None = None, **rule_options: Any) -> HopfieldMemory:
    """Store the saved tasks' masks of ``run`` in a new memory (one pattern per task, in task order).

    Parameters
    ----------
    run : RunDirectory
    rule : str
        A key of ``hopfield_masks.RULES``.
    backend : {"dense", "implicit"}, optional
        Default: the rule's first backend.
    device : torch.device or str
    num_tasks : int, optional
        Store only tasks ``0..num_tasks-1`` (default: every saved task).
    **rule_options
        Passed to the rule (e.g. ``zero_diagonal`` for the pseudo-inverse).

    Returns
    -------
    HopfieldMemory holding ``len(run.saved_tasks())`` patterns with the model's layout
    """
    tasks = run.saved_tasks()
    if num_tasks is not None:
        if not 1 <= num_tasks <= len(tasks) or tasks[:num_tasks] != list(range(num_tasks)):
            raise ValueError(f"num_tasks must be between 1 and the {len(tasks)} saved task(s); got {num_tasks}.")
        tasks = tasks[:num_tasks]
    if not tasks:
        raise ValueError(
            f"run {run.path} has no task masks to encode (no files in {run.path / 'masks'}); "
            "train it first, or the masks were already deleted after an earlier encode."
        )
    model = run.load_model("cpu", num_tasks=0)
    _check_maskable(run, model)
    layout = mask_layout(model)
    memory = make_memory(rule, layout.dim, backend or default_backend(rule), layout=layout, device=device, **rule_options)
    patterns = torch.stack([masks_to_patterns(layout.flatten(run.read_task(t).masks).float()) for t in tasks])
    memory.store(patterns)
    return memory


def check_store_matches(memory: HopfieldMemory, model: nn.Module) -> MaskLayout:
    """Return the model's layout if ``memory`` was encoded with it; else a ``ValueError`` naming the mismatch."""
    layout = mask_layout(model)
    if memory.layout is None:
        raise ValueError("the store has no layout; re-encode the run with `supsup encode` so it records the masked layers.")
    if memory.layout != layout:
        raise ValueError(
            f"the store was encoded for masked layers {memory.layout.to_dict()}, but this run's model has "
            f"{layout.to_dict()}; use the store encoded from this run (`supsup encode RUN`)."
        )
    if memory.count == 0:
        raise ValueError("the store holds no patterns; encode a run with trained tasks first")
    return layout


def recovery_batches(data: TaskData, *, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of the images of ``data`` (labels are dropped: recovery never sees them)."""
    n = len(data.x)
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator).to(data.x.device)
        for lo in range(0, n - batch_size + 1, batch_size):
            yield data.x.index_select(0, order[lo: lo + batch_size])


def _entropy_of(model: nn.Module, layout: MaskLayout, real_outputs: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def entropy(state: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        # ±1 (or soft [-1, 1]) state -> {0,1} (or [0,1]) masks per layer
        modes.set_masks(model, layout.unflatten((state + 1.0) / 2.0))
        return output_entropy(model(images), real_outputs)

    return entropy


def recover_task(model: nn.Module, memory: HopfieldMemory, batches: Iterator[torch.Tensor], *, real_outputs: int,
                 method: str = "reference", config: RecoveryConfig | SteerConfig | None = None) -> TaskRecovery:
    """Recover one task's masks from unlabelled batches and the memory alone.

    Parameters
    ----------
    model : nn.Module
        The run's model with its fixed weights (its own masks, if any, are not used).
    memory : HopfieldMemory
        The store encoded from the run.
    batches : iterator of Tensor (B, *input_shape)
        Unlabelled images of the task to recover.
    real_outputs : int
        Number of class outputs the entropy is taken over.
    method : {"reference", "steered"}
    config : RecoveryConfig (reference) or SteerConfig (steered), optional
        With a memory that keeps its patterns (implicit backends), the steered method retries when the
        recall ends on no stored pattern, ``config.retries`` times at most (see ``SteerConfig.retry``).

    Returns
    -------
    TaskRecovery
    """
    if method not in RECOVERY_METHODS:
        raise ValueError(f"method must be one of {RECOVERY_METHODS}; got {method!r}.")
    layout = check_store_matches(memory, model)
    entropy = _entropy_of(model, layout, real_outputs)
    init = memory.mean_pattern.detach().float()
    batches = iter(batches)  # a list works too, and retries continue where the last descent stopped
    start = time.perf_counter()
    model.eval()
    attempts = 1
    if method == "reference":
        config = config if config is not None else RecoveryConfig()
        if not isinstance(config, RecoveryConfig):
            raise TypeError(f"method 'reference' takes a RecoveryConfig; got {type(config).__name__}.")
        result = anneal(entropy=entropy, energy=memory.energy, init=init, batches=batches, config=config)
        steps = result.steps
    else:
        config = config if config is not None else SteerConfig()
        if not isinstance(config, SteerConfig):
            raise TypeError(f"method 'steered' takes a SteerConfig; got {type(config).__name__}.")
        zero = torch.zeros(memory.dim, device=memory.device, dtype=memory.dtype)
        offset = memory.field(zero).detach()  # −θ: the field of 0, so Ψg = field(g) − field(0)

        def project(grad: torch.Tensor) -> torch.Tensor:
            return memory.field(grad.to(memory.dtype)) - offset

        def recall(state: torch.Tensor) -> torch.Tensor:
            return memory.recall(state, mode="sync", max_steps=config.recall_steps).states[0]

        result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                       batches=batches, config=config)
        steps = result.steps
        # Ended on no stored pattern (a spurious mixture): descend again with more data per step. Only a
        # memory that keeps its patterns can tell; landing on another task's pattern cannot be told apart.
        while isinstance(memory, PackedMemory) and attempts <= config.retries and int(memory.find_stored(result.state)) < 0:
            retry_config, merge = config.retry(attempts)
            merged = _merged(batches, merge)
            first = next(merged, None)
            if first is None:  # a finite iterator ran out: keep what the last attempt found
                break
            result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                           batches=itertools.chain([first], merged), config=retry_config)
            steps += result.steps
            attempts += 1
    seconds = time.perf_counter() - start
    state = result.state.detach()
    masks = {name: m.detach() for name, m in layout.unflatten((state + 1.0) / 2.0).items()}
    return TaskRecovery(state, masks, steps, seconds, result, attempts)


def _merged(batches: Iterator[torch.Tensor], count: int) -> Iterator[torch.Tensor]:
    """Batches of ``count`` consecutive batches each, concatenated (the last one shorter if they run out)."""
    while group := list(itertools.islice(batches, count)):
        yield torch.cat(group)


def masked_accuracy(model: nn.Module, masks: Mapping[str, torch.Tensor], data: TaskData, *, num_classes: int,
                    batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` with the given layer ``masks`` (argmax over the first ``num_classes`` outputs)."""
    modes.set_masks(model, {name: m.float() for name, m in masks.items()})
    return accuracy(model, data, num_classes=num_classes, batch_size=batch_size)
