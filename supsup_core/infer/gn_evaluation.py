"""GN evaluation: classify each task's test images with a task inferred from the masks alone, no task id.

Each task's test images are cut into groups of ``images_per_inference``; each group's task is inferred
(one-shot or binary, entropy or superfluous objective) among the learned tasks, then the group is classified
with the inferred task's mask. Two scenarios (SupSup's names):

- ``GNs`` (shared labels): the group's predictions count as they come, whichever mask made them;
- ``GNu`` (unshared labels): a group whose task is inferred wrongly scores 0, as in the paper.

The accuracy with each task's own mask on the same images (``own_mask_*``; GG's, for a run trained task by
task) is reported alongside for comparison.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from supsup_core.checks import check_choice, check_output_size, check_positive
from supsup_core.data.streams import TaskData, TaskStream, build_stream
from supsup_core.infer.exhaustive import infer_task_exhaustive
from supsup_core.infer.inference import INFERENCE
from supsup_core.infer.nn_results import NNRunResults
from supsup_core.infer.objectives import OBJECTIVES, Objective
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn import modes
from supsup_core.nn.layers import MaskedBatchNorm
from supsup_core.nn.method import EXHAUSTIVE_ENTROPY
from supsup_core.train.runs import RunDirectory
from supsup_core.train.training import correct

__all__ = [
    "EVALUATION_SCENARIOS",
    "GN_OPTIONS",
    "GN_SCENARIOS",
    "GNConfig",
    "GNResult",
    "check_scenario_options",
    "evaluate_gn",
    "evaluate_gn_exhaustive",
    "evaluate_run_gn",
]

GN_SCENARIOS = ("GNs", "GNu")
EVALUATION_SCENARIOS = ("GG", *GN_SCENARIOS)
"""Every scenario a run is evaluated in: GG (task id given, each task's own mask) or a GN scenario."""
GN_OPTIONS = ("inference", "objective", "images_per_inference", "max_images_per_task", "real_outputs")
"""The :class:`GNConfig` fields that choose how tasks are inferred; GG evaluation infers nothing and takes none."""


@dataclass(frozen=True)
class GNConfig:
    """How to evaluate without task ids.

    Parameters
    ----------
    scenario : {"GNs", "GNu"}
    inference : {"oneshot", "binary"}
        A key of :data:`supsup_core.infer.inference.INFERENCE`.
    objective : {"entropy", "superfluous"}
        A key of :data:`supsup_core.infer.objectives.OBJECTIVES`.
    real_outputs : int
        Number of classes; predictions are the argmax over these outputs only.
    images_per_inference : int
        Images whose task is inferred together (1 = single-image inference).
    max_images_per_task : int, optional
        Use only the first this many test images of each task (single-image inference is slow).
    batch_size : int
        Images classified per forward pass.
    """

    scenario: str = "GNu"
    inference: str = "oneshot"
    objective: str = "entropy"
    real_outputs: int = 10
    images_per_inference: int = 128
    max_images_per_task: int | None = None
    batch_size: int = 1000

    def __post_init__(self) -> None:
        check_choice(self.scenario, "scenario", GN_SCENARIOS, "GG needs no task inference; use GNs or GNu here.")
        check_choice(self.inference, "inference", INFERENCE, "Use --inference oneshot or --inference binary.")
        check_choice(self.objective, "objective", OBJECTIVES, "Use --objective entropy or --objective superfluous.")
        check_positive(self.real_outputs, "real_outputs", "It is the number of classes, e.g. 10 for MNIST.")
        check_positive(self.images_per_inference, "images_per_inference")
        if self.max_images_per_task is not None:
            check_positive(self.max_images_per_task, "max_images_per_task")
        check_positive(self.batch_size, "batch_size")

    @classmethod
    def for_stream(cls, stream: TaskStream, *, scenario: str = "GNu", inference: str | None = None, objective: str | None = None,
                   real_outputs: int | None = None, images_per_inference: int | None = None,
                   max_images_per_task: int | None = None, batch_size: int | None = None) -> GNConfig:
        """A config for evaluating ``stream``'s tasks: ``real_outputs`` defaults to its number of classes.

        Every other option left None keeps the default above (``max_images_per_task``'s is None: all images).
        """
        chosen = {"inference": inference, "objective": objective, "images_per_inference": images_per_inference,
                  "max_images_per_task": max_images_per_task, "batch_size": batch_size}
        return cls(scenario=scenario, real_outputs=stream.num_classes if real_outputs is None else real_outputs,
                   **{name: value for name, value in chosen.items() if value is not None})


def check_scenario_options(scenario: str, given: Iterable[str]) -> None:
    """Refuse task-inference options in a scenario that infers no task, rather than silently ignore them.

    Parameters
    ----------
    scenario : {"GG", "GNs", "GNu"}
    given : iterable of str
        The :data:`GN_OPTIONS` the user set, even to their default value.
    """
    check_choice(scenario, "scenario", EVALUATION_SCENARIOS, "GG gives the task id; GNs and GNu infer it.")
    if scenario != "GG":
        return
    given = set(given)
    for name in GN_OPTIONS:
        if name in given:
            raise ValueError(f"--{name.replace('_', '-')} applies to --scenario GNs or GNu only (GG classifies each task with its "
                             "own mask, nothing is inferred); drop it or choose a GN scenario.")


class GNResult(NamedTuple):
    """Results of :func:`evaluate_gn`; lists are indexed by task id.

    ``task_inference_accuracy`` is the fraction of all groups whose task was inferred correctly;
    ``own_mask_*`` are the accuracies with each task's own mask on the same images.
    """

    per_task_accuracy: list[float]
    average_accuracy: float
    task_inference_accuracy: float
    per_task_inference_accuracy: list[float]
    own_mask_per_task_accuracy: list[float]
    own_mask_average_accuracy: float
    inferences: int
    seconds: float


def _check_model(model: nn.Module, config: GNConfig) -> None:
    others = list(modes.other_task_modules(model))
    if others:
        raise ValueError(
            f"GN evaluation superposes masks only, but modules {others} keep other per-task state (e.g. BatchNorm "
            "statistics); evaluate this model in the GG scenario."
        )
    if config.images_per_inference < 2 and any(isinstance(m, MaskedBatchNorm) for m in modes.masked_layers(model).values()):
        raise ValueError(
            "this model normalises with batch statistics, which need at least 2 images; use --images-per-inference 2 or more."
        )


@torch.no_grad()
def _correct(model: nn.Module, masks: PackedMasks, task_id: int, x: Tensor, y: Tensor, config: GNConfig) -> Tensor:
    """Per-image correctness (bool, shape (N,)) of ``x`` classified with ``task_id``'s mask."""
    modes.set_masks(model, {name: m.to(x.device) for name, m in masks.task_masks(task_id).items()})
    return correct(model, x, y, num_classes=config.real_outputs, batch_size=config.batch_size)


def evaluate_gn(model: nn.Module, masks: PackedMasks, tasks: Sequence[TaskData], config: GNConfig, *,
                mask_of_task: Sequence[int] | None = None, progress: bool = False) -> GNResult:
    """Accuracy of every task without task ids, inferring each group's task from ``masks``.

    Parameters
    ----------
    model : nn.Module
        The fixed-weight model; its masked layers are driven by ``masks`` (it need hold no task).
    masks : PackedMasks
        The learned tasks' masks, on the model's device; task ``t``'s test data is ``tasks[t]``.
    tasks : sequence of TaskData
        Test images ``x`` (N, ...) and labels ``y`` (N,) per task.
    config : GNConfig
    mask_of_task : sequence of int, optional
        The mask that belongs to each task (NN runs, where masks were allocated without task ids);
        default: mask ``t`` for task ``t``, so at most ``masks.num_tasks`` tasks.
    progress : bool
        Show a tqdm bar over tasks.

    Returns
    -------
    GNResult
    """
    _check_model(model, config)
    if masks.num_tasks == 0 or not tasks:
        raise ValueError("there is nothing to evaluate: no learned task; train at least one task first.")
    if mask_of_task is None:
        if len(tasks) > masks.num_tasks:
            raise ValueError(f"{len(tasks)} test sets but only {masks.num_tasks} learned masks; pass one test set per learned task.")
        mask_of_task = range(len(tasks))
    if len(mask_of_task) != len(tasks) or any(not 0 <= m < masks.num_tasks for m in mask_of_task):
        raise ValueError(
            f"mask_of_task must name one mask in 0..{masks.num_tasks - 1} per test set ({len(tasks)}); got {list(mask_of_task)}."
        )
    objective = Objective(config.objective, config.real_outputs)
    infer = INFERENCE[config.inference]
    candidates = torch.arange(masks.num_tasks)  # the learned tasks only
    return _evaluate_groups(
        tasks, config, mask_of_task, progress,
        infer_group=lambda x: infer(model, x, masks, objective, candidates).task_id,
        correct_with=lambda task_id, x, y: _correct(model, masks, task_id, x, y, config))


def evaluate_gn_exhaustive(model: nn.Module, tasks: Sequence[TaskData], config: GNConfig, *,
                           progress: bool = False) -> GNResult:
    """Accuracy of every task without task ids, each group's task found by exhaustive search
    (:func:`supsup_core.infer.exhaustive.infer_task_exhaustive`: lowest mean entropy over the learned tasks).

    For methods whose tasks differ by more than masks (BatchEnsemble's factors); ``model`` holds the
    learned tasks ``0..len(tasks)-1``. Only the entropy objective applies; ``config.inference`` is not used.
    """
    _check_exhaustive_objective(config)
    learned = modes.num_tasks(model)
    if not tasks or learned < len(tasks):
        raise ValueError(f"{len(tasks)} test sets but the model holds {learned} learned task(s); pass one test set per learned task.")
    candidates = list(range(learned))

    def correct_with(task_id: int, x: Tensor, y: Tensor) -> Tensor:
        modes.set_task(model, task_id)
        return correct(model, x, y, num_classes=config.real_outputs, batch_size=config.batch_size)

    return _evaluate_groups(
        tasks, config, range(len(tasks)), progress,
        infer_group=lambda x: infer_task_exhaustive(model, x, candidates, real_outputs=config.real_outputs).task_id,
        correct_with=correct_with)


def _check_exhaustive_objective(config: GNConfig) -> None:
    if config.objective != "entropy":
        raise ValueError(f"exhaustive task inference compares output entropies; got objective {config.objective!r}. "
                         "Use --objective entropy.")


def _evaluate_groups(tasks: Sequence[TaskData], config: GNConfig, mask_of_task: Sequence[int], progress: bool, *,
                     infer_group: Callable[[Tensor], int], correct_with: Callable[[int, Tensor, Tensor], Tensor]) -> GNResult:
    """The GN loop: cut each task's images into groups, infer each group's task with ``infer_group(x)``, and
    score it with ``correct_with(task_id, x, y)`` (per-image bool) as the scenario says."""
    start = time.perf_counter()
    per_task, per_task_inference, own_mask, inferences, right = [], [], [], 0, 0
    for task_id, data in enumerate(tqdm(tasks, desc=f"{config.scenario} {config.inference}", disable=not progress, leave=False)):
        own = int(mask_of_task[task_id])
        n = len(data.y) if config.max_images_per_task is None else min(len(data.y), config.max_images_per_task)
        x, y = data.x[:n], data.y[:n]
        if n == 0:
            raise ValueError(f"task {task_id} has no test images; check the data stream.")
        # Near-equal groups (sizes differ by at most one), so no group is a lone leftover image.
        groups = torch.tensor_split(torch.arange(n, device=x.device), math.ceil(n / config.images_per_inference))
        inferred = torch.tensor([infer_group(x[g]) for g in groups])
        inferences += len(groups)
        right += int((inferred == own).sum())
        per_task_inference.append(int((inferred == own).sum()) / len(groups))
        true_hits = correct_with(own, x, y)
        own_mask.append(int(true_hits.sum()) / n)
        hits = torch.zeros(n, dtype=torch.bool, device=x.device)
        for guess in inferred.unique().tolist():
            chosen = torch.cat([g for g, t in zip(groups, inferred.tolist()) if t == guess])
            if guess == own:
                hits[chosen] = true_hits[chosen]
            elif config.scenario == "GNs":  # shared labels: the wrong task's predictions still count
                hits[chosen] = correct_with(guess, x[chosen], y[chosen])
            # GNu: a wrongly inferred group scores 0 (hits stay False)
        per_task.append(int(hits.sum()) / n)
    return GNResult(
        per_task_accuracy=per_task,
        average_accuracy=sum(per_task) / len(per_task),
        task_inference_accuracy=right / inferences,
        per_task_inference_accuracy=per_task_inference,
        own_mask_per_task_accuracy=own_mask,
        own_mask_average_accuracy=sum(own_mask) / len(own_mask),
        inferences=inferences,
        seconds=time.perf_counter() - start,
    )


def _nn_mask_of_task(run: RunDirectory, num_tasks: int) -> list[int]:
    """The ``mask_of_task`` an NN run's results.json records, checked (one mask id per task of the stream)."""
    mask_of_task = NNRunResults.from_run(run, num_tasks=num_tasks).mask_of_task
    if mask_of_task is None:
        raise ValueError(
            f"{run.path} is an NN run that stopped before it finished: its results.json has no mask_of_task (the mask "
            "each task trained most), so its masks cannot be matched to the tasks. NN runs are not resumable; run the "
            "same `supsup train --scenario NN` command again with a new --out directory."
        )
    return mask_of_task


def evaluate_run_gn(run: RunDirectory, config: GNConfig, *, device: torch.device | str = "cpu",
                    stream: TaskStream | None = None, progress: bool = False) -> GNResult:
    """:func:`evaluate_gn` on a run directory: every task with a mask file, packed, on the run's test sets.

    The model is loaded with its fixed weights only; the masks stay bit-packed (d/8 bytes per task).

    Parameters
    ----------
    run : RunDirectory
    config : GNConfig
        ``real_outputs`` must not exceed the model's output size.
    device : torch.device or str
    stream : TaskStream, optional
        Default: built from the run's stream config on ``device``.
    progress : bool
    """
    method = run.config.build_method()
    if method.task_inference is None:
        raise ValueError(f"{run.path} was trained with --method {run.config.method}, which has no way to find a task without "
                         "its id; evaluate it with --scenario GG.")
    if method.task_inference == EXHAUSTIVE_ENTROPY:
        _check_exhaustive_objective(config)
    saved = run.trained_tasks()
    if not saved:
        raise ValueError(f"the run in {run.path} holds no trained task (no mask files); train it first with `supsup train`.")
    if saved != list(range(len(saved))):
        raise ValueError(f"the run's mask files cover tasks {saved}, not 0..{len(saved) - 1}; the run is incomplete. Resume training first.")
    check_output_size(run.config.model.output_size, config.real_outputs, needs_extra=config.objective == "superfluous")
    stream = stream if stream is not None else build_stream(run.config.stream, device)
    # An NN run's masks were allocated without task ids: every task of the stream, each with the mask it trained most.
    mask_of_task = _nn_mask_of_task(run, stream.num_tasks) if run.scenario() == "NN" else None
    task_ids = range(stream.num_tasks) if mask_of_task is not None else saved
    if mask_of_task is None and len(saved) > stream.num_tasks:
        raise ValueError(f"the run holds {len(saved)} tasks but its stream has {stream.num_tasks}; the run directory is inconsistent.")
    if method.task_inference == EXHAUSTIVE_ENTROPY:
        model = run.load_model(device)
        return evaluate_gn_exhaustive(model, [stream.test_set(t) for t in saved], config, progress=progress)
    model = run.load_model(device, num_tasks=0)
    masks = PackedMasks.from_task_masks(run.read_task(t).masks for t in saved).to(device)
    tasks = [stream.test_set(t) for t in task_ids]
    return evaluate_gn(model, masks, tasks, config, mask_of_task=mask_of_task, progress=progress)
