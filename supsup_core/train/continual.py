"""Train a run task after task as its method says (SupSup: a task's scores, then its mask; baselines: their own
state and the weights they share), store the task, evaluate every task so far; resumable."""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple

import numpy as np
import torch
from torch import nn

from supsup_core.data.streams import (
    PermutedStream,
    RotatedStream,
    TaskStream,
    build_stream,
)
from supsup_core.nn import modes
from supsup_core.nn.method import Method
from supsup_core.train.metrics import fwt, summarize
from supsup_core.train.results import RunResults, TaskRecord
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.shared_state import SharedState
from supsup_core.train.training import (
    TrainConfig,
    TrainResult,
    evaluate_task,
    evaluate_tasks,
    make_shared_optimizer,
    task_generator,
    train_task,
)

__all__ = ["RunResult", "check_compatible", "train_method_task", "train_run"]


class RunResult(NamedTuple):
    """The state of a run after :func:`train_run`.

    Attributes
    ----------
    accuracy_matrix : list of lists
        Row ``i`` holds the test accuracy of tasks ``0..i`` after training task ``i``.
    metrics : dict
        ``average_accuracy``, ``bwt``, ``forgetting_max``, ``forgetting_initial``.
    mask_bytes_per_task : list of int
        Size of each task's file in ``masks/`` (a mask, or whatever state the method keeps per task).
    resumed_from : int
        Tasks already finished when this call started.
    """

    accuracy_matrix: list[list[float]]
    metrics: dict[str, float]
    mask_bytes_per_task: list[int]
    resumed_from: int


def check_compatible(run: RunDirectory | RunConfig, stream: TaskStream) -> None:
    """Raise ``ValueError`` unless ``stream`` is the run's stream and its model fits it.

    The stream must be of the run's dataset with its number of tasks (and permutation seed or rotation
    step), and the model must take the stream's inputs and have an output per class at least.
    Takes a :class:`RunConfig` too, so a command can check its options before anything is written.
    """
    config = run.config if isinstance(run, RunDirectory) else run
    model, expected = config.model, config.stream
    fix = "build the stream from the run's config: build_stream(run.config.stream)."
    if stream.name != expected.dataset or stream.num_tasks != expected.num_tasks:
        raise ValueError(f"the run trains {expected.num_tasks} task(s) of {expected.dataset} but the stream gives "
                         f"{stream.num_tasks} of {stream.name}; {fix}")
    if isinstance(stream, RotatedStream) and stream.angle_step != expected.angle_step:
        raise ValueError(f"the run's tasks rotate by {expected.angle_step} degrees but the stream's by {stream.angle_step}; {fix}")
    if isinstance(stream, PermutedStream):
        first = np.random.RandomState(expected.seed).permutation(stream.permutations.shape[1])  # as PermutedStream draws
        if not np.array_equal(stream.permutations[0].cpu().numpy(), first):
            raise ValueError(f"the stream's permutations are not the ones of the run's stream seed {expected.seed}; {fix}")
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


class _ScoreSum:
    """The running sum of tasks ``0..n-1``'s saved scores by layer, for transfer.

    Tasks finished before this process started are read from the run's files once; each task trained
    here is added from memory, so a T-task run reads O(T) scores files, not O(T²). It sums in task order,
    so a resumed run starts a task from the same floats as an uninterrupted one.
    """

    def __init__(self, run: RunDirectory) -> None:
        self._run, self._sum, self._count = run, {}, 0

    def mean(self, task_id: int) -> dict[str, dict[str, torch.Tensor]] | None:
        """The mean scores of tasks ``0..task_id-1`` as each masked layer's initial state (None for task 0)."""
        if task_id == 0:
            return None
        while self._count < task_id:
            self.add(self._count, self._run.read_scores(self._count))
        return {name: {"scores": s / task_id} for name, s in self._sum.items()}

    def add(self, task_id: int, scores: dict[str, torch.Tensor]) -> None:
        """Add ``task_id``'s scores if they are the next ones the sum is missing."""
        if task_id != self._count:
            return
        for name, value in scores.items():
            value = value.detach().to("cpu", torch.float32)
            self._sum[name] = value.clone() if task_id == 0 else self._sum[name] + value
        self._count += 1


def _kept_rows(results: RunResults, saved: set[int], num_tasks: int) -> int:
    """How many leading results rows stay: well formed, and every task in them still has its mask file.

    Row ``i`` holds ``i + 1`` accuracies; a task whose mask file is gone is retrained, so its row and every
    later one (which hold its accuracy) are computed again.
    """
    matrix, sizes, tasks = results.accuracy_matrix, results.mask_bytes_per_task, results.tasks
    kept = 0
    while (kept < min(len(matrix), len(sizes), len(tasks), num_tasks) and kept in saved and kept in results.finished_tasks
           and tasks[kept].task_id == kept and isinstance(matrix[kept], list) and len(matrix[kept]) == kept + 1
           and all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 <= a <= 1 for a in matrix[kept])):
        kept += 1
    return kept


def train_run(
    run: RunDirectory,
    *,
    device: torch.device | str = "cpu",
    stream: TaskStream | None = None,
    progress: bool = False,
    on_task_end: Callable[[int, list[float]], None] | None = None,
) -> RunResult:
    """Train every task of ``run`` that has no mask file yet, writing each task's files as soon as it is done.

    The run's method (``run.config.method``, see :mod:`supsup_core.train.methods`) says what a task is.
    Per task ``t`` without a mask file: the method allocates its state (SupSup: scores from
    :func:`task_generator`, or with ``config.transfer`` the mean of the earlier tasks' saved scores), trains
    it, and finishes it; the run writes every task module's state (SupSup: the bit-packed mask, and the
    scores when the run saves them). A task whose mask file exists is never retrained and its files never
    change: it is loaded frozen. Then, for every task ``t`` from the first results row missing (a crash
    before it was written, rows lost, or a task retrained because its mask file was deleted), evaluate tasks
    ``0..t`` and rewrite results.json: masks are fixed and weights frozen, so a row rebuilt from the mask
    files equals the one first written.

    Holds the run's lock throughout (:class:`supsup_core.train.run_lock.RunBusyError` if another process writes it).

    Parameters
    ----------
    run : RunDirectory
    device : torch.device or str
    stream : TaskStream, optional
        Default: built from the run's stream config on ``device``; a given one must match it
        (see :func:`check_compatible`).
    progress : bool
        Show tqdm bars.
    on_task_end : callable(task_id, row), optional
        Called after each task's results row is written.
    """
    with run.locked():
        return _train_run(run, device, stream, progress, on_task_end)


def _shared_resume_point(run: RunDirectory, method: Method, saved: set[int], num_tasks: int) -> SharedState | None:
    """The run's last shared state (None: none yet), with ``saved`` cut to the task files that fit it
    (:meth:`RunDirectory.trained_tasks`: a file written after it by a task that trained shared weights is
    trained again). A task file missing at or before the shared state can be retrained alone only if no task
    from it on trained shared weights (BatchEnsemble's later tasks); otherwise the run cannot be repaired
    (``ValueError``).
    """
    shared = run.read_shared()
    done = shared.after_task if shared is not None else -1
    if done >= num_tasks:
        raise ValueError(f"{run.shared_path} holds the weights after task {done}, but the run has {num_tasks} tasks; it "
                         "belongs to another run. Train the run again into a new --out directory.")
    saved &= set(run.trained_tasks(shared))
    for t in range(done + 1):
        if t not in saved and any(method.trains_shared(j) for j in range(t, done + 1)):
            raise ValueError(
                f"task {t} of {run.path} has no task file, but the weights its method ({run.config.method}) shares between "
                f"tasks were trained further after it (the run holds them after task {done}), so task {t} cannot be "
                "trained again alone. Train the run again into a new --out directory.")
    return shared


def train_method_task(method: Method, model: nn.Module, task_id: int, stream: TaskStream, config: TrainConfig, *,
                      generator: torch.Generator, shared_optimizer: torch.optim.Optimizer | None,
                      init: Mapping[str, Mapping[str, torch.Tensor]] | None = None, progress: bool = False,
                      on_batch: Callable[[int], None] | None = None) -> TrainResult:
    """Allocate task ``task_id`` in ``model`` and train it as ``method`` says: its own state with a fresh optimizer,
    and, while :meth:`Method.trains_shared` says so, the shared weights with ``shared_optimizer`` (the one a run
    keeps, see :func:`make_shared_optimizer`). The shared weights need grad only then.
    """
    method.start_task(model, init=init, generator=generator)
    shared_params, trains_shared = method.shared_parameters(model), method.trains_shared(task_id)
    for p in shared_params:
        p.requires_grad_(trains_shared)
    try:
        return train_task(model, task_id, stream, config, generator=generator, progress=progress,
                          params=method.task_parameters(model, task_id),
                          shared_optimizer=shared_optimizer if trains_shared else None, on_batch=on_batch)
    finally:
        for p in shared_params:
            p.requires_grad_(False)


def _check_rows_rebuildable(run: RunDirectory, method: Method, kept: int, done: int) -> None:
    """Row ``i`` is evaluated with the weights after task ``i``; only the latest shared weights are kept, so a
    lost row ``i < done`` can be rebuilt only if no task in ``i+1..done`` trained shared weights."""
    for i in range(kept, done):
        if any(method.trains_shared(j) for j in range(i + 1, done + 1)):
            raise ValueError(
                f"results.json of {run.path} has lost the row of task {i}, which needs the shared weights as they were "
                f"after task {i}; the run keeps only the latest (after task {done}). Train the run again into a new "
                "--out directory (or restore results.json).")


def _train_run(run: RunDirectory, device: torch.device | str, stream: TaskStream | None, progress: bool,
               on_task_end: Callable[[int, list[float]], None] | None) -> RunResult:
    config = run.config
    method = config.build_method()
    stream = stream if stream is not None else build_stream(config.stream, device)
    check_compatible(run, stream)
    if run.scenario() == "NN":
        raise ValueError(f"{run.path} holds an NN run (masks allocated without task ids); it cannot be continued task by task. Choose a new --out directory.")
    num_tasks = stream.num_tasks
    results = run.read_results()
    saved = set(run.saved_tasks())
    shared_state = _shared_resume_point(run, method, saved, num_tasks)
    kept = _kept_rows(results, saved, num_tasks)

    def accuracy_of(model: nn.Module, task_id: int) -> float:
        return evaluate_task(model, task_id, stream, batch_size=config.train.eval_batch_size)

    full = method.full_accuracy_matrix
    if not full:
        results.initial_accuracy = None
    elif results.initial_accuracy is None or len(results.initial_accuracy) != num_tasks:
        # b_j of forward transfer: every task with the weights before any training
        results.initial_accuracy = method.untrained_task_accuracy(
            run.load_model(device, num_tasks=0, initial_weights=True), accuracy_of, range(num_tasks))
    if full:
        kept = min(kept, len(results.accuracy_matrix_full or []))
    _check_rows_rebuildable(run, method, kept, shared_state.after_task if shared_state is not None else -1)
    # the training record of a task whose mask file stays is kept, whatever happens to its results row
    records = {record.task_id: record for record in results.tasks if record.task_id in saved}
    del results.accuracy_matrix[kept:], results.mask_bytes_per_task[kept:], results.tasks[kept:]
    results.accuracy_matrix_full = (results.accuracy_matrix_full or [])[:kept] if full else None
    results.finished_tasks = set(range(kept))
    model = run.load_model(device, num_tasks=0)
    results.method, results.dataset, results.model = config.method, config.stream.dataset, config.model.name
    results.num_tasks, results.data_note, results.mask_bits_per_task = num_tasks, stream.note, _mask_bits(model)
    results.shared_bytes = method.shared_bytes(model)
    shared_optimizer = make_shared_optimizer(method.shared_parameters(model), config.train)
    if shared_optimizer is not None and shared_state is not None and shared_state.optimizer is not None:
        shared_optimizer.load_state_dict(shared_state.optimizer)
    score_sum = _ScoreSum(run) if config.transfer else None
    for task_id in range(num_tasks):
        record = records.get(task_id, TaskRecord(task_id))
        if task_id in saved:
            run.add_frozen(model, run.read_task(task_id))
        else:
            trained = train_method_task(method, model, task_id, stream, config.train, generator=task_generator(config.seed, task_id),
                                        shared_optimizer=shared_optimizer, progress=progress,
                                        init=score_sum.mean(task_id) if score_sum is not None else None)
            if config.save_scores:
                run.write_scores(model, task_id)
            if score_sum is not None:
                score_sum.add(task_id, {name: layer.task_scores(task_id) for name, layer in modes.masked_layers(model).items()})
            method.finish_task(model, task_id)
            run.write_task(model, task_id)
            if method.trains_shared(task_id):  # the boundary: weights and optimizer after this task, in one atomic file
                run.write_shared(model, task_id, shared_optimizer)
            record = TaskRecord(task_id, trained=True, iterations=trained.iterations, final_loss=trained.final_loss,
                                seconds=trained.seconds, optimizer=trained.optimizer)
        if task_id < kept:
            continue
        row = evaluate_tasks(model, stream, range(task_id + 1), batch_size=config.train.eval_batch_size)
        results.accuracy_matrix.append(row)
        if full:
            results.accuracy_matrix_full.append(row + method.untrained_task_accuracy(model, accuracy_of, range(task_id + 1, num_tasks)))
        results.mask_bytes_per_task.append(run.mask_bytes(task_id))
        results.memory_bytes_per_task = method.memory_bytes_per_task(model, task_id)
        results.tasks.append(record)
        results.finished_tasks.add(task_id)
        for key, value in summarize(results.accuracy_matrix).items():
            setattr(results, key, value)
        results.fwt = fwt(results.accuracy_matrix_full, results.initial_accuracy) if full else None
        results.finished = results.finished_tasks == set(range(num_tasks))
        run.write_results(results)
        if on_task_end is not None:
            on_task_end(task_id, row)
    matrix = results.accuracy_matrix
    return RunResult(matrix, summarize(matrix), list(results.mask_bytes_per_task), kept)
