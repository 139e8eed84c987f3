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
    for task_id in range(done, stream.num_tasks):
        info: dict[str, Any] = {"task_id": task_id, "trained": False}
        if task_id >= modes.num_tasks(model):
            generator = task_generator(config.seed, task_id)
            init = transfer_scores(run, task_id) if config.transfer else None
            modes.add_task(model, init_scores=init, generator=generator)
            trained = train_task(model, task_id, stream, config.train, generator=generator, progress=progress)
            if config.save_scores:
                run.write_scores(model, task_id)
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
