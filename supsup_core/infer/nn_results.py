"""An NN run's results.json as a typed record: the masks allocated without task ids, every novelty check,
and the evaluation without task ids that followed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

from supsup_core.train.results import RESULTS_SCHEMA_VERSION
from supsup_core.train.runs import RunDirectory

__all__ = ["NNCheck", "NNRunResults"]

_DAMAGED = "The file is damaged; train the NN run again into a new --out directory."


class NNCheck(NamedTuple):
    """One novelty check: at global ``batch``, on data of ``true_task`` (recorded, never used), ``max ν``
    against ``threshold`` over ``num_superposed`` masks (both None at the first check, which just allocates
    mask 0); ``mask`` trained next; ``allocated`` if it is new."""

    batch: int
    true_task: int
    max_nu: float | None
    threshold: float | None
    num_superposed: int
    mask: int
    allocated: bool


@dataclass
class NNRunResults:
    """The content of an NN run's results.json (``scenario == "NN"``).

    Written twice: once unfinished (``finished`` False, no ``mask_of_task``) before the first mask file, so
    that nothing adopts the run's masks as task ids, then complete.

    Attributes
    ----------
    masks_allocated : int or None
        Masks the run allocated (``masks/task_k`` for k below it), against ``true_tasks`` in the stream.
    mask_of_task : list of int or None
        ``mask_of_task[t]`` is the mask trained most on true task t's data; None until the run finishes.
    evaluation, nn_config : dict or None
        The :class:`~supsup_core.infer.gn_evaluation.GNConfig` and
        :class:`~supsup_core.infer.nn_training.NNConfig` used, as JSON.
    per_task_accuracy, average_accuracy, task_inference_accuracy : list of float, float, float, or None
        The evaluation without task ids (DESIGN §5's keys), ``mask_of_task`` counting as the right answer.
    own_mask_per_task_accuracy, own_mask_average_accuracy : list of float, float, or None
        The same images classified with each true task's own mask (``mask_of_task[t]``).
    checks : list of NNCheck
        Every novelty check, in order.
    mask_bytes_per_task : list of int
        Size of each allocated mask's file.
    """

    scenario: str = "NN"
    schema_version: int = RESULTS_SCHEMA_VERSION
    finished: bool = False
    dataset: str | None = None
    model: str | None = None
    data_note: str | None = None
    masks_allocated: int | None = None
    true_tasks: int | None = None
    mask_of_task: list[int] | None = None
    evaluation: dict[str, Any] | None = None
    per_task_accuracy: list[float] | None = None
    average_accuracy: float | None = None
    task_inference_accuracy: float | None = None
    own_mask_per_task_accuracy: list[float] | None = None
    own_mask_average_accuracy: float | None = None
    nn_config: dict[str, Any] | None = None
    seconds: float | None = None
    checks: list[NNCheck] = field(default_factory=list)
    mask_bytes_per_task: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (checks as objects)."""
        data = dataclasses.asdict(self)
        data["checks"] = [check._asdict() for check in self.checks]
        # GG bookkeeping stays empty: an NN run has no task ids to fill an accuracy matrix with.
        data["accuracy_matrix"], data["tasks"] = [], []
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, num_tasks: int | None = None, fix: str = _DAMAGED) -> NNRunResults:
        """Parse an NN run's results.json; one without ``schema_version`` (older code) reads the same.

        Parameters
        ----------
        data : mapping
            The JSON object.
        num_tasks : int, optional
            The stream's number of tasks: ``mask_of_task`` must name one mask per task (default: as many as
            ``true_tasks``, when it is recorded).
        fix : str
            Ends every error message.

        Raises ``ValueError`` naming the malformed field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"results.json holds {type(data).__name__}, not the run's results object. {fix}".rstrip())
        version = data.get("schema_version", 0)
        if version not in (0, RESULTS_SCHEMA_VERSION):
            raise ValueError(f"results.json has schema_version {version!r}; this code reads {RESULTS_SCHEMA_VERSION}. {fix}".rstrip())
        if data.get("scenario") != "NN":
            what = f"is of scenario {data.get('scenario', 'GG')!r}" if data else "is empty (no results yet)"
            raise ValueError(f"results.json {what}, not an NN run's. {fix}".rstrip())
        count = num_tasks if num_tasks is not None else data.get("true_tasks")
        mask_of_task = data.get("mask_of_task")
        if mask_of_task is not None and (not isinstance(mask_of_task, list) or not all(_is_id(m) for m in mask_of_task)
                                         or (count is not None and len(mask_of_task) != count)):
            expected = "mask ids" if count is None else f"{count} mask ids, one per task of the stream"
            raise ValueError(f"mask_of_task must be a list of {expected}; got {mask_of_task!r}. {fix}".rstrip())
        checks = data.get("checks", [])
        names = set(NNCheck._fields)
        if not isinstance(checks, list) or not all(isinstance(c, Mapping) and set(c) == names for c in checks):
            raise ValueError(f"checks must be a list of objects with the keys {sorted(names)}; got {checks!r:.80}. {fix}".rstrip())
        for key, optional in (("per_task_accuracy", True), ("own_mask_per_task_accuracy", True), ("mask_bytes_per_task", False)):
            if key in data and not isinstance(data[key], list) and not (optional and data[key] is None):
                raise ValueError(f"{key} must be a list; got {type(data[key]).__name__}. {fix}".rstrip())
        known = {f.name for f in dataclasses.fields(cls)} - {"checks", "schema_version", "finished"}
        # Schema 0 wrote "finished" only into the early marker: a file with mask_of_task is a finished run.
        finished = data.get("finished", mask_of_task is not None)
        return cls(**{k: v for k, v in data.items() if k in known}, checks=[NNCheck(**c) for c in checks], finished=finished)

    @classmethod
    def from_run(cls, run: RunDirectory, *, num_tasks: int | None = None) -> NNRunResults:
        """The results.json of the NN run in ``run`` (``ValueError`` naming the file if it is not one, or damaged)."""
        try:
            return cls.from_dict(run.read_results_data(), num_tasks=num_tasks)
        except ValueError as err:
            raise ValueError(f"{run.results_path}: {err}") from err


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
