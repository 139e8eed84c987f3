"""Train a run task after task: train the task's scores, store its mask, evaluate every task so far; resumable."""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from supsup_core import modes
from supsup_core.metrics import summarize
from supsup_core.runs import RunDirectory
from supsup_core.streams import TaskStream, build_stream
from supsup_core.training import evaluate_tasks, task_generator, train_task

__all__ = ["RunResult", "check_compatible", "transfer_scores", "train_run"]


class RunResult(NamedTuple):
    """The state of a run after :func:`train_run`.

    Attributes
    ----------
    accuracy_matrix : list of lists
        Row ``i`` holds the test accuracy of tasks ``0..i`` after training task ``i``.
    metrics : dict
        ``average_accuracy``, ``bwt``, ``forgetting_max``, ``forgetting_initial``.
    mask_bytes_per_task : list of int
        Size of each task's mask file.
    resumed_from : int
        Tasks already finished when this call started.
    """

    accuracy_matrix: list[list[float]]
    metrics: dict[str, float]
    mask_bytes_per_task: list[int]
    resumed_from: int


def check_compatible(run: RunDirectory, stream: TaskStream) -> None:
    """Raise ``ValueError`` unless the run's model fits the stream (input shape, enough outputs)."""
    model = run.config.model
    if tuple(model.input_shape) != tuple(stream.input_shape):
        raise ValueError(
            f"the model expects inputs of shape {tuple(model.input_shape)} but the stream gives {tuple(stream.input_shape)}; "
            "build the model config with input_shape=stream.input_shape."
        )
    if model.output_size < stream.num_classes:
        raise ValueError(
            f"output size {model.output_size} is smaller than the {stream.num_classes} classes of {stream.name}; "
            f"use --output-size {stream.num_classes} or more."
        )


def _mask_bits(model: nn.Module) -> int:
    return sum(math.prod(layer.mask_shape) for layer in modes.masked_layers(model).values())


def transfer_scores(run: RunDirectory, task_id: int) -> dict[str, torch.Tensor] | None:
    """Initial scores of ``task_id`` under transfer: the mean of tasks ``0..task_id-1``'s saved scores by layer
    (``None`` for the first task)."""
    if task_id == 0:
        return None
    total = {name: s.clone() for name, s in run.read_scores(0).items()}
    for earlier in range(1, task_id):
        for name, scores in run.read_scores(earlier).items():
            total[name] += scores
    return {name: s / task_id for name, s in total.items()}


class _ScoreSum:
    """The running sum of tasks ``0..n-1``'s saved scores by layer, for transfer.

    Tasks finished before this process started are read from the run's files once; each task trained
    here is added from memory, so a T-task run reads O(T) scores files, not O(T²). Sums in task order,
    as :func:`transfer_scores` does, so both give the same floats.
    """

    def __init__(self, run: RunDirectory) -> None:
        self._run, self._sum, self._count = run, {}, 0

    def mean(self, task_id: int) -> dict[str, torch.Tensor] | None:
        """The mean scores of tasks ``0..task_id-1`` (None for task 0)."""
        if task_id == 0:
            return None
        while self._count < task_id:
            self.add(self._count, self._run.read_scores(self._count))
        return {name: s / task_id for name, s in self._sum.items()}

    def add(self, task_id: int, scores: dict[str, torch.Tensor]) -> None:
        """Add ``task_id``'s scores if they are the next ones the sum is missing."""
        if task_id != self._count:
            return
        for name, value in scores.items():
            value = value.detach().to("cpu", torch.float32)
            self._sum[name] = value.clone() if task_id == 0 else self._sum[name] + value
        self._count += 1


def train_run(
    run: RunDirectory,
    *,
    device: torch.device | str = "cpu",
    stream: TaskStream | None = None,
    progress: bool = False,
    on_task_end: Callable[[int, list[float]], None] | None = None,
) -> RunResult:
    """Train every task of ``run`` not finished yet, writing each task's files as soon as it is done.

    Per task ``t``: allocate scores (from :func:`task_generator`, or with ``config.transfer`` the mean of
    the earlier tasks' scores, see :func:`transfer_scores`), train them, write the bit-packed mask
    (and the scores when the run saves them), freeze the task, evaluate tasks ``0..t`` and rewrite
    results.json. A task whose mask file exists but whose results row is missing (a crash in between)
    is evaluated from its file, not retrained; files written before never change.

    Parameters
    ----------
    run : RunDirectory
    device : torch.device or str
    stream : TaskStream, optional
        Default: built from the run's stream config on ``device``.
    progress : bool
        Show tqdm bars.
    on_task_end : callable(task_id, row), optional
        Called after each task's results row is written.
    """
    config = run.config
    stream = stream if stream is not None else build_stream(config.stream, device)
    check_compatible(run, stream)
    results = run.read_results()
    if results.get("scenario") == "NN":
        raise ValueError(f"{run.path} holds an NN run (masks allocated without task ids); it cannot be continued task by task. Choose a new --out directory.")
    done = len(results["accuracy_matrix"])
    model = run.load_model(device, num_tasks=done + (done in run.saved_tasks()))
    results.update(dataset=config.stream.dataset, model=config.model.name, num_tasks=stream.num_tasks,
                   data_note=stream.note, mask_bits_per_task=_mask_bits(model))
    score_sum = _ScoreSum(run) if config.transfer else None
    for task_id in range(done, stream.num_tasks):
        info: dict[str, Any] = {"task_id": task_id, "trained": False}
        if task_id >= modes.num_tasks(model):
            generator = task_generator(config.seed, task_id)
            init = score_sum.mean(task_id) if score_sum is not None else None
            modes.add_task(model, init_scores=init, generator=generator)
            trained = train_task(model, task_id, stream, config.train, generator=generator, progress=progress)
            if config.save_scores:
                run.write_scores(model, task_id)
            if score_sum is not None:
                score_sum.add(task_id, {name: layer.task_scores(task_id) for name, layer in modes.masked_layers(model).items()})
            run.write_task(model, task_id)
            for layer in modes.masked_layers(model).values():
                layer.freeze_task(task_id)
            info.update(trained=True, iterations=trained.iterations, final_loss=trained.final_loss, seconds=trained.seconds)
        row = evaluate_tasks(model, stream, range(task_id + 1), batch_size=config.train.eval_batch_size)
        results["accuracy_matrix"].append(row)
        results["mask_bytes_per_task"].append(run.mask_bytes(task_id))
        results["tasks"].append(info)
        results.update(summarize(results["accuracy_matrix"]), finished=task_id + 1 == stream.num_tasks)
        run.write_results(results)
        if on_task_end is not None:
            on_task_end(task_id, row)
    matrix = results["accuracy_matrix"]
    return RunResult(matrix, summarize(matrix), list(results["mask_bytes_per_task"]), done)
