"""Comparing finished runs: one row per run of metrics, bytes per task and time, as a table, CSV, JSON or plot.

matplotlib is imported when a plot is drawn, not with this module, and the figure is drawn on its own Agg
canvas (no pyplot, no ``matplotlib.use``), as in :mod:`supsup_core.hopsupsup.plot`.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from hopfield_masks.figures import new_figure, save_png
from hopfield_masks.io import write_csv as io_write_csv
from supsup_core.train.metrics import check_accuracy_matrix, fwt, summarize
from supsup_core.train.results import RunResults
from supsup_core.train.runs import RunDirectory

__all__ = ["ComparisonRow", "compare_runs", "comparison_warnings", "format_table", "comparison_to_dict", "write_csv",
           "plot_comparison", "plot_runs"]


class ComparisonRow(NamedTuple):
    """What one run achieved and what it cost, read from its results.json.

    Attributes
    ----------
    path : str
        The run directory.
    method, model, dataset : str
        The continual-learning method, architecture and task stream.
    num_finished_tasks, num_tasks : int
        Tasks trained and evaluated, of the stream's.
    average_accuracy, bwt, forgetting_max : float
        :mod:`supsup_core.train.metrics` of the accuracy matrix (over the finished tasks).
    fwt : float or None
        Forward transfer; None where the method gives an untrained task no accuracy (SupSup: no mask yet).
    task_file_bytes : float or None
        Mean size of a task's file in ``masks/``.
    memory_bytes_per_task : int or None
        Bytes the method holds in memory per task (older runs: the packed mask, ``ceil(mask bits / 8)``).
    shared_bytes : int or None
        Bytes every task shares (the weights), where the run records them.
    seconds_per_task : float or None
        Mean training time of the tasks this run trained (None when every task came from earlier files).
    accuracy_curve : tuple of float, length num_finished_tasks
        Entry ``i``: average accuracy over tasks ``0..i`` after training task ``i`` (the mean of row ``i``).
    accuracy_matrix : tuple of tuples of float
        Row ``i``: the accuracies after training task ``i``, of every task where the run holds the full matrix,
        else of tasks ``0..i``.
    """

    path: str
    method: str
    model: str
    dataset: str
    num_finished_tasks: int
    num_tasks: int
    average_accuracy: float
    bwt: float
    forgetting_max: float
    fwt: float | None
    task_file_bytes: float | None
    memory_bytes_per_task: int | None
    shared_bytes: int | None
    seconds_per_task: float | None
    accuracy_curve: tuple[float, ...]
    accuracy_matrix: tuple[tuple[float, ...], ...]


CSV_FIELDS = tuple(name for name in ComparisonRow._fields if name not in ("accuracy_curve", "accuracy_matrix"))
"""The CSV's columns: every field but the curve and the matrix (lists, kept to the JSON)."""


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _forward_transfer(results: RunResults) -> float | None:
    """The stored fwt, else computed from the full matrix and the initial accuracy where both are there."""
    if results.fwt is not None:
        return results.fwt
    if results.accuracy_matrix_full and results.initial_accuracy:
        return fwt(results.accuracy_matrix_full, results.initial_accuracy)
    return None


def _memory_bytes(results: RunResults) -> int | None:
    if results.memory_bytes_per_task is not None:
        return results.memory_bytes_per_task
    # runs written before the field: SupSup holds one bit-packed mask per task
    return None if results.mask_bits_per_task is None else math.ceil(results.mask_bits_per_task / 8)


def _read_row(path: str | os.PathLike) -> ComparisonRow:
    run = RunDirectory.open(path)
    if run.scenario() == "NN":
        raise ValueError(f"{run.path} is an NN run (masks allocated without task ids): compare takes task-by-task runs; "
                         f"evaluate this one with `supsup evaluate {run.path} --scenario GNs`.")
    results = run.read_results()
    if not results.finished_tasks or not results.accuracy_matrix:
        raise ValueError(f"{run.path} has no finished task, so there is nothing to compare; train it first (rerun "
                         f"`supsup train --out {run.path}` with the run's options).")
    try:
        matrix = check_accuracy_matrix(results.accuracy_matrix)  # row i: tasks 0..i
        computed = summarize(matrix)  # the metrics' definition, for a file that lacks the stored ones
        forward = _forward_transfer(results)
    except ValueError as err:
        raise ValueError(f"{run.results_path}: {err} Delete it and rerun `supsup train` with the run's options: the "
                         "results of tasks whose files exist are rebuilt from them, without retraining.") from err
    trained_seconds = [task.seconds for task in results.tasks if task.trained and task.seconds is not None]
    metrics = {name: computed[name] if getattr(results, name) is None else getattr(results, name)
               for name in ("average_accuracy", "bwt", "forgetting_max")}
    return ComparisonRow(
        path=str(run.path),
        method=results.method,
        model=results.model or run.config.model.name,
        dataset=results.dataset or run.config.stream.dataset,
        num_finished_tasks=len(results.finished_tasks),
        num_tasks=results.num_tasks or run.config.stream.num_tasks,
        **metrics,
        fwt=forward,
        task_file_bytes=_mean(results.mask_bytes_per_task),
        memory_bytes_per_task=_memory_bytes(results),
        shared_bytes=results.shared_bytes,
        seconds_per_task=_mean(trained_seconds),
        accuracy_curve=tuple(sum(row) / len(row) for row in matrix),
        accuracy_matrix=tuple(tuple(float(a) for a in row) for row in (results.accuracy_matrix_full or matrix)),
    )


def compare_runs(paths: Sequence[str | os.PathLike]) -> list[ComparisonRow]:
    """Read one :class:`ComparisonRow` per run directory, in the order given.

    Raises ``ValueError`` naming the run and the fix for a folder that is not a run, a run with no finished
    task, an NN-scenario run (no task-by-task accuracy matrix) or damaged results.
    """
    if len(paths) == 0:
        raise ValueError("compare_runs needs at least one run directory; got none.")
    return [_read_row(path) for path in paths]


def comparison_warnings(rows: Sequence[ComparisonRow]) -> list[str]:
    """Notes on what makes ``rows`` not like for like (different datasets or task counts, unfinished runs).

    Nothing is refused: comparing across datasets can be what the reader wants, but the numbers then
    measure different things, and a run that stopped early is averaged over fewer (and easier) tasks.
    """
    notes = []
    for field, what in (("dataset", "datasets"), ("num_tasks", "numbers of tasks")):
        values = {getattr(row, field) for row in rows}
        if len(values) > 1:
            listed = ", ".join(f"{Path(row.path).name}: {getattr(row, field)}" for row in rows)
            notes.append(f"the runs differ in {what} ({listed}); the comparison is not like for like.")
    for row in rows:
        if row.num_finished_tasks < row.num_tasks:
            notes.append(f"{row.path} finished {row.num_finished_tasks} of {row.num_tasks} tasks; its metrics cover those only "
                         "(resume `supsup train` on it to finish it).")
    return notes


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: Sequence[ComparisonRow]) -> str:
    """The rows as an aligned text table: one line per run (``-`` where a value is not defined)."""
    header = ("run", "method", "model", "tasks", "avg acc", "BWT", "forgetting", "FWT", "file B/task", "memory B/task",
              "s/task")
    lines = [header] + [
        (Path(row.path).name, row.method, row.model, f"{row.num_finished_tasks}/{row.num_tasks}",
         f"{row.average_accuracy:.4f}", f"{row.bwt:+.4f}", f"{row.forgetting_max:.4f}", _number(row.fwt, "+.4f"),
         _number(row.task_file_bytes, ".0f"), _number(row.memory_bytes_per_task, "d"), _number(row.seconds_per_task, ".2f"))
        for row in rows
    ]
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]

    def align(line: tuple[str, ...]) -> str:  # text columns (run, method, model) to the left, numbers to the right
        return "  ".join(cell.ljust(w) if k < 3 else cell.rjust(w) for k, (cell, w) in enumerate(zip(line, widths))).rstrip()

    return "\n".join(align(line) for line in lines)


def comparison_to_dict(rows: Sequence[ComparisonRow]) -> dict[str, Any]:
    """The comparison as a JSON-ready object: ``{"runs": [row fields, curve as a list], "warnings": [...]}``."""
    return {"runs": [{**row._asdict(), "accuracy_curve": list(row.accuracy_curve),
                      "accuracy_matrix": [list(r) for r in row.accuracy_matrix]} for row in rows],
            "warnings": comparison_warnings(rows)}


def write_csv(rows: Sequence[ComparisonRow], path: str | os.PathLike) -> Path:
    """Write one CSV line per run under a header of :data:`CSV_FIELDS` (empty cells for None), atomically.

    The accuracy curve and matrix are left out (they are lists); :func:`comparison_to_dict` holds them.
    """
    return io_write_csv(path, CSV_FIELDS, ([getattr(row, name) for name in CSV_FIELDS] for row in rows))


def _labels(rows: Sequence[ComparisonRow]) -> list[str]:
    """The method, plus the run folder's name where two runs share a method (the whole path if that is shared too)."""
    methods = [row.method for row in rows]
    labels = [f"{row.method} ({Path(row.path).name})" if methods.count(row.method) > 1 else row.method for row in rows]
    return [f"{row.method} ({row.path})" if labels.count(label) > 1 else label for row, label in zip(rows, labels)]


def plot_comparison(rows: Sequence[ComparisonRow], path: str | os.PathLike) -> Path:
    """Write a PNG of average accuracy against the number of tasks learned, one line per run (SupSup's Figure 3).

    Parameters
    ----------
    rows : sequence of ComparisonRow
        Each run's ``accuracy_curve`` is drawn at 1..num_finished_tasks.
    path : where to write the PNG (atomically: complete or absent)

    Returns
    -------
    Path of the written file
    """
    figure = new_figure(figsize=(6.4, 4.4), constrained_layout=True)
    _draw_curves(figure.subplots(), rows)
    return save_png(figure, path)


def _draw_curves(axes, rows: Sequence[ComparisonRow]) -> None:
    for row, label in zip(rows, _labels(rows)):
        axes.plot(range(1, len(row.accuracy_curve) + 1), row.accuracy_curve, marker="o", markersize=3, label=label)
    datasets = sorted({row.dataset for row in rows})
    axes.set(title=f"Average accuracy on the tasks learned so far\n({', '.join(datasets)})", xlabel="number of tasks learned",
             ylabel="average accuracy")
    axes.xaxis.get_major_locator().set_params(integer=True)  # tasks are counted, never fractional
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def plot_runs(rows: Sequence[ComparisonRow], path: str | os.PathLike, *, columns: int = 4) -> Path:
    """Write a PNG of the runs' average accuracy against the number of tasks learned (one line per run) and each
    run's accuracy matrix as a heat map (``R[i][j]``; blank where a task had no accuracy yet), atomically.

    Parameters
    ----------
    rows : sequence of ComparisonRow
    path : where to write the PNG
    columns : int
        Panels per row of the figure (the curves first, then one heat map per run).
    """
    panels = 1 + len(rows)
    ncols = min(columns, panels)
    nrows = math.ceil(panels / ncols)
    figure = new_figure(figsize=(4.6 * ncols, 4.0 * nrows), constrained_layout=True)
    grid = figure.subplots(nrows, ncols, squeeze=False).flatten()
    _draw_curves(grid[0], rows)
    for axes, row, label in zip(grid[1:], rows, _labels(rows)):
        width = max(len(r) for r in row.accuracy_matrix)
        cells = [list(r) + [math.nan] * (width - len(r)) for r in row.accuracy_matrix]
        image = axes.imshow(cells, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        if width <= 12:  # values are legible at this size
            for i, r in enumerate(row.accuracy_matrix):
                for j, a in enumerate(r):
                    axes.text(j, i, f"{a:.2f}", ha="center", va="center", fontsize=7, color="white" if a < 0.6 else "black")
        axes.set(title=label, xlabel="evaluated task j", ylabel="after training task i")
        figure.colorbar(image, ax=axes, shrink=0.8)
    for axes in grid[panels:]:
        axes.set_axis_off()
    return save_png(figure, path)
