"""A run's results.json as a typed record: the accuracy matrix, metrics, and which tasks are finished."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from hopfield_masks.io import csv_text

__all__ = ["RESULTS_SCHEMA_VERSION", "TaskRecord", "RunResults"]

RESULTS_SCHEMA_VERSION = 1
"""Version of results.json's layout (1: written from :class:`RunResults`; files without one are older)."""

_METRICS = ("average_accuracy", "bwt", "forgetting_max", "forgetting_initial")


@dataclass
class TaskRecord:
    """How one task of a run was trained: ``trained`` is False when its masks came from an earlier process's
    file that outlived the results (then the other fields are unknown)."""

    task_id: int
    trained: bool = False
    iterations: int | None = None
    final_loss: float | None = None
    seconds: float | None = None
    optimizer: str | None = None


@dataclass
class RunResults:
    """The content of a task-by-task run's results.json (``scenario == "GG"``).

    Attributes
    ----------
    accuracy_matrix : list of lists of float
        Row ``i`` holds the test accuracy of tasks ``0..i`` after training task ``i``.
    mask_bytes_per_task : list of int
        Size of each task's file in ``masks/``, by row.
    tasks : list of TaskRecord
        How each row's task was trained.
    finished_tasks : set of int
        Tasks trained and evaluated. A trainer that finishes tasks out of order (several processes) records
        them here all the same. :func:`supsup_core.train.continual.train_run` trains task after task: it
        keeps the rows of the leading finished tasks and rebuilds every row from the first gap on (a row
        of the accuracy matrix holds every earlier task).
    finished : bool
        Every task of the stream is finished.
    average_accuracy, bwt, forgetting_max, forgetting_initial : float or None
        :func:`supsup_core.train.metrics.summarize` of the matrix (None before the first task).
    accuracy_matrix_full : list of lists of float, optional
        Row ``i`` holds the accuracy of *every* task ``0..T-1`` after training task ``i``, where the method
        gives a task not yet trained a meaning (PSP: its context over the current weights; fine-tuning:
        the one network); None for methods that have no state for an untrained task (SupSup: no mask yet).
    initial_accuracy : list of float, optional
        Accuracy of every task before any training (the ``b_j`` of forward transfer), where defined.
    fwt : float, optional
        Forward transfer :func:`supsup_core.train.metrics.fwt` (needs the full matrix and ``initial_accuracy``).
    memory_bytes_per_task : int, optional
        Bytes the method holds in memory for each task beyond what all tasks share (SupSup: the packed
        mask, d/8; PSP: the contexts; BatchEnsemble: the factors; a separate model: all its weights).
    shared_bytes : int, optional
        Bytes of the state every task shares (the weights), once per run.
    """

    method: str = "supsup"
    dataset: str | None = None
    model: str | None = None
    num_tasks: int | None = None
    data_note: str | None = None
    mask_bits_per_task: int | None = None
    accuracy_matrix: list[list[float]] = field(default_factory=list)
    mask_bytes_per_task: list[int] = field(default_factory=list)
    tasks: list[TaskRecord] = field(default_factory=list)
    finished_tasks: set[int] = field(default_factory=set)
    finished: bool = False
    average_accuracy: float | None = None
    bwt: float | None = None
    forgetting_max: float | None = None
    forgetting_initial: float | None = None
    accuracy_matrix_full: list[list[float]] | None = None
    initial_accuracy: list[float] | None = None
    fwt: float | None = None
    memory_bytes_per_task: int | None = None
    shared_bytes: int | None = None
    scenario: str = "GG"
    schema_version: int = RESULTS_SCHEMA_VERSION

    def to_csv(self) -> str:
        """The results as CSV a spreadsheet reads (results.csv beside results.json): the accuracy matrix in long
        form, one ``accuracy`` row per ``(trained_through, eval_task)`` (every task where the full matrix is
        known, else tasks ``0..trained_through``), then one ``metric`` row per run metric that has a value."""
        rows = self.accuracy_matrix_full if self.accuracy_matrix_full else self.accuracy_matrix
        cells = [["accuracy", i, j, "", float(accuracy)] for i, row in enumerate(rows) for j, accuracy in enumerate(row)]
        metrics = [["metric", "", "", name, getattr(self, name)]
                   for name in (*_METRICS, "fwt", "memory_bytes_per_task", "shared_bytes") if getattr(self, name) is not None]
        return csv_text(["kind", "trained_through", "eval_task", "name", "value"], cells + metrics)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``finished_tasks`` as a sorted list)."""
        data = dataclasses.asdict(self)
        data["finished_tasks"] = sorted(self.finished_tasks)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, fix: str = "") -> "RunResults":
        """Parse results.json; one without ``schema_version`` (older code) gets ``finished_tasks`` from its rows.

        Raises ``ValueError`` naming the malformed field (``fix`` ends the message).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"results.json holds {type(data).__name__}, not the run's results object. {fix}".rstrip())
        version = data.get("schema_version", 0)
        if version not in (0, RESULTS_SCHEMA_VERSION):
            raise ValueError(f"results.json has schema_version {version!r}; this code reads {RESULTS_SCHEMA_VERSION}. {fix}".rstrip())
        if data.get("scenario", "GG") != "GG":
            raise ValueError(f"results.json is of scenario {data.get('scenario')!r}, not a task-by-task (GG) run. {fix}".rstrip())
        for key in ("accuracy_matrix", "mask_bytes_per_task", "tasks"):
            if not isinstance(data.get(key, []), list):
                raise ValueError(f"results.json: {key!r} must be a list; got {type(data[key]).__name__}. "
                                 f"It was not written by `supsup train`. {fix}".rstrip())
        records, fields = [], {f.name for f in dataclasses.fields(TaskRecord)}
        for info in data.get("tasks", []):
            if not isinstance(info, Mapping) or isinstance(info.get("task_id"), bool) or not isinstance(info.get("task_id"), int):
                raise ValueError(f"results.json: every entry of 'tasks' must be an object with an integer task_id; "
                                 f"got {info!r:.80}. {fix}".rstrip())
            records.append(TaskRecord(**{k: v for k, v in info.items() if k in fields}))
        finished = data.get("finished_tasks")
        if finished is None:  # schema 0: one row per finished task, in order
            finished = [r.task_id for r in records[: len(data.get("accuracy_matrix", []))]]
        if not isinstance(finished, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in finished):
            raise ValueError(f"results.json: 'finished_tasks' must be a list of task ids; got {finished!r:.80}. {fix}".rstrip())
        known = {f.name for f in dataclasses.fields(cls)} - {"tasks", "finished_tasks", "schema_version"}
        return cls(**{k: v for k, v in data.items() if k in known}, tasks=records, finished_tasks=set(finished))
