"""Run directories: config, fixed weights written once, one bit-packed mask file per task, results.

Layout::

    RUN/config.json                 RunConfig (format_version, method, seed, save_scores, model, stream, train)
    RUN/weights.safetensors         the fixed random weights (model state with no task), written once
    RUN/masks/task_000.safetensors  task 0's state as its method defines it: each task module's
                                    ``task_state`` (supsup_core.nn.task_modules), boolean tensors as
                                    "bits.<module>.<key>" packed uint8 (ceil(numel/8),) with their shape and
                                    density in the metadata (a supermask is "bits.<layer>.mask"), others as
                                    "state.<module>.<key>" (per-task BatchNorm statistics)
    RUN/scores/task_000.safetensors task 0's float scores by layer (only with save_scores)
    RUN/shared.safetensors          methods that train shared weights (PSP, fine-tuning, BatchEnsemble):
                                    those weights after the last finished task and the optimizer kept over
                                    them, in one file ("model.<key>", "optimizer.<param>.<key>")
    RUN/results.json                accuracy_matrix (row i: tasks 0..i after training task i), metrics and
                                    the finished tasks (supsup_core.train.results)
    RUN/.lock                       held (flock) by the one process writing the run, see supsup_core.train.run_lock

Every file is written atomically, so a crash leaves each one either complete or absent (plus, at worst, a
hidden ``.<name>.<random>.tmp`` file, removed the next time the run is opened for writing). Every tensor
file carries a SHA-256 ``checksum`` of its metadata and tensors, verified on every load; the weights are
also compared with the ones the run's seed draws.

Format 3 (this code) stores any task module's state; format 2 (masks as "mask.<layer>", statistics as
"state.<module>.<key>", no method in config.json: SupSup) is still read, and a format-2 run resumes.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

import torch
from torch import nn

from hopfield_masks.files import tensor_checksum
from hopfield_masks.io import (
    atomic_write_bytes,
    load_tensors,
    read_json,
    save_tensors,
    temp_file_target,
    write_json,
)
from supsup_core.nn import modes
from supsup_core.nn.task_modules import task_modules
from supsup_core.train import run_lock
from supsup_core.train.results import RunResults
from supsup_core.train.run_config import (
    FORMAT_VERSION,
    READS_FORMATS,
    RunConfig,
    config_diff,
)
from supsup_core.train.shared_state import (
    SharedState,
    shared_state_from_tensors,
    shared_state_tensors,
)
from supsup_core.train.task_state import (
    TaskState,
    task_state_from_tensors,
    task_state_tensors,
)

__all__ = ["RunConfig", "RunDirectory", "SharedState", "FORMAT_VERSION", "READS_FORMATS", "MASK_FORMAT", "RUN_ENTRIES"]

MASK_FORMAT = "supsup-task-masks"
WEIGHTS_FORMAT = "supsup-weights"
SCORES_FORMAT = "supsup-task-scores"
SHARED_FORMAT = "supsup-shared-state"
RUN_ENTRIES = ("config.json", "weights.safetensors", "shared.safetensors", "results.json", "results.csv", "masks", "scores")
"""The names at the top of a run directory that the run itself writes (besides hidden lock and temp files)."""
# atomic_write_bytes' temp files: ".<target name>.<random>.tmp" beside the target
_RUN_FILE = re.compile(r"config\.json|results\.(json|csv)|weights\.safetensors|shared\.safetensors|task_\d+\.safetensors")


_RESULTS_FIX = ("Delete it and rerun `supsup train` with the run's options: the results of tasks whose mask files exist "
                "are rebuilt from them, without retraining.")


class _Results(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _is_temp_file(name: str) -> bool:
    """Whether ``name`` is the temp file of an interrupted write of one of the run's own files."""
    target = temp_file_target(name)
    return target is not None and _RUN_FILE.fullmatch(target) is not None


def _save_checked(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Path:
    """Save with a ``checksum`` over ``meta`` and the tensors added to the metadata."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return save_tensors(path, tensors, {**meta, "checksum": tensor_checksum(tensors, meta)})


def _load_checked(path: Path, *, what: str, fmt: str, fix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a run's tensor file and verify its format, version and checksum; ``fix`` ends every error."""
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path} is not a file (a directory?); remove it. {fix}")
    tensors, meta = load_tensors(path, what=what)
    if meta.get("format") != fmt or meta.get("format_version") not in map(str, READS_FORMATS):
        raise ValueError(
            f"{path} is not a version-{FORMAT_VERSION} {fmt} file (format {meta.get('format')!r}, version "
            f"{meta.get('format_version')!r}); it was written by other code or renamed. {fix}"
        )
    if meta.get("checksum") != tensor_checksum(tensors, meta):
        raise ValueError(f"{what} {path} is corrupted: its tensors and metadata do not match its checksum. {fix}")
    return tensors, meta


class RunDirectory:
    """A run on disk. Use :meth:`create` (new or resumed, for writing) or :meth:`open` (existing).

    Writing a run takes the directory's exclusive lock (see :mod:`supsup_core.train.run_lock`): :meth:`create`
    returns a run holding it until :meth:`close` (or the end of a ``with`` block, or of the process), and
    every method that writes takes it too, so a second process writing the same run is refused with
    :class:`RunBusyError` naming the holder.
    """

    def __init__(self, path: str | os.PathLike, config: RunConfig) -> None:
        self.path = Path(path)
        self.config = config
        self._holding = 0  # acquisitions of the lock made by create() for this object
        self._shared_key_cache: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None

    # ------------------------------------------------------------------ open
    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> "RunDirectory":
        """Start a run in ``path``, or continue the one there if its config is the same (else ``ValueError``).

        Takes the run's lock first (:class:`RunBusyError` if another process holds it) and keeps it;
        stale temp files of an interrupted write are removed. Nothing is written unless the config is valid.
        """
        run, model = cls(path, config), None
        if not (run.path / "config.json").exists():
            run._refuse_foreign()
            model = run.fixed_model()  # validates the model config before anything is written
        run_lock.acquire(run.path)
        run._holding += 1
        try:
            run._remove_stale_temp_files()
            if (run.path / "config.json").exists():
                old = cls.open(run.path).config
                changes = config_diff(old.to_dict(), config.to_dict())
                if changes and run._grows(old, config, changes):  # new tasks arrive: the run is extended
                    write_json(run.path / "config.json", config.to_dict())
                    return run
                if changes:
                    raise ValueError(
                        f"{run.path} holds a run with a different config ({'; '.join(changes)}); a run resumes only with "
                        "the options it was started with (or more --num-tasks, to grow it). Repeat the original options "
                        "or choose a new --out directory."
                    )
                if read_json(run.path / "config.json", what="run config").get("format_version") != FORMAT_VERSION:
                    # an older run resumed by this code: its new task files are format 3, so its config says so too
                    write_json(run.path / "config.json", config.to_dict())
                return run
            run._refuse_foreign()
            write_json(run.path / "config.json", config.to_dict())
            run._write_weights(model if model is not None else run.fixed_model())
        except BaseException:
            run.close()
            raise
        return run

    def _grows(self, old: RunConfig, new: RunConfig, changes: list[str]) -> bool:
        """Whether ``new`` extends the run of ``old`` with more tasks and changes nothing else (``ValueError`` where
        such a run cannot grow). Task ``t``'s data, seed and state depend only on ``t``, so tasks added later
        are trained exactly as they would have been in a run started with them."""
        if changes != [f"stream.num_tasks: {old.stream.num_tasks!r} -> {new.stream.num_tasks!r}"] or \
                new.stream.num_tasks < old.stream.num_tasks:
            return False
        if self.scenario() == "NN":
            raise ValueError(f"{self.path} holds an NN run, which is not resumed, so it cannot grow; train the longer stream "
                             "into a new --out directory.")
        method = new.build_method()
        if method.full_accuracy_matrix:
            raise ValueError(f"a --method {new.method} run records every task's accuracy after each task (the full "
                             f"matrix), which the {new.stream.num_tasks - old.stream.num_tasks} new task(s) would leave "
                             "incomplete for the tasks already trained; train the longer stream into a new --out directory.")
        return True

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDirectory":
        """Open an existing run (its config.json must be readable); takes no lock until something is written."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a run directory: it has no config.json. Create one with `supsup train --out {path}`.")
        try:
            config = RunConfig.from_dict(read_json(path / "config.json", what="run config"))
        except ValueError as err:
            raise ValueError(f"{path / 'config.json'}: {err}") from err
        return cls(path, config)

    def _refuse_foreign(self) -> None:
        """Refuse a folder holding anything but this project's lock and temp files (and no config.json)."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a folder; choose a new --out directory.")
        others = sorted(p.name for p in self.path.iterdir() if p.name != run_lock.LOCK_NAME and not _is_temp_file(p.name))
        if others:
            raise ValueError(
                f"{self.path} exists, is not empty and holds no run (no config.json; it holds {', '.join(others[:5])}); "
                "choose a new --out directory."
            )

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files left by writes a crash interrupted (only called under the lock)."""
        for folder in (self.path, self.path / "masks", self.path / "scores"):
            if folder.is_dir():
                for p in folder.iterdir():
                    if _is_temp_file(p.name) and p.is_file():
                        p.unlink(missing_ok=True)

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def locked(self) -> Iterator["RunDirectory"]:
        """Hold the run's lock for the ``with`` block (reentrant within a process; ``RunBusyError`` if busy)."""
        run_lock.acquire(self.path)
        try:
            yield self
        finally:
            run_lock.release(self.path)

    def close(self) -> None:
        """Release the lock :meth:`create` took (a no-op for runs from :meth:`open`, or when called again)."""
        while self._holding:
            self._holding -= 1
            run_lock.release(self.path)

    def __enter__(self) -> "RunDirectory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def require_masks(self, purpose: str) -> None:
        """Raise ``ValueError`` unless the run's method keeps supermasks, which ``purpose`` needs."""
        if not self.config.build_method().uses_masks:
            raise ValueError(f"{self.path} was trained with --method {self.config.method}, which keeps no supermasks; "
                             f"{purpose} needs a run trained with --method supsup.")

    # --------------------------------------------------------------- weights
    @property
    def weights_path(self) -> Path:
        return self.path / "weights.safetensors"

    def weights_digest(self) -> str:
        """SHA-256 (hex) of the fixed weights file: the run's identity, recorded in stores encoded from it."""
        if not self.weights_path.is_file():
            raise ValueError(f"{self.path} has no weights file yet; resume `supsup train` on it first.")
        return hashlib.sha256(self.weights_path.read_bytes()).hexdigest()

    def fixed_model(self) -> nn.Module:
        """The model with no tasks, weights drawn from the run's seed (on the CPU)."""
        return self.config.build_method().build_model(self.config.model, torch.Generator().manual_seed(self.config.seed))

    def load_model(self, device: torch.device | str = "cpu", *, num_tasks: int | None = None,
                   initial_weights: bool = False) -> nn.Module:
        """The model with the saved weights and tasks ``0..num_tasks-1`` frozen from their mask files.

        ``num_tasks`` defaults to every task with a mask file. The weights file is written on first use.
        Its checksum is verified, and its tensors must equal (up to float rounding) the ones the run's seed
        draws: a mismatch means the file belongs to another run. Where the method trains shared weights,
        they are then replaced by those of ``shared.safetensors`` (after the last finished task), unless
        ``initial_weights`` asks for the weights before any training.
        """
        model = self.fixed_model()
        if not self.weights_path.exists():  # a crash right after config.json
            self._write_weights(model)
        fix = (f"The weights follow from the run's seed: delete {self.weights_path} and rerun `supsup train` with the run's "
               "options (it rewrites them; nothing else is retrained).")
        tensors, _ = _load_checked(self.weights_path, what="fixed weights", fmt=WEIGHTS_FORMAT, fix=fix)
        expected = model.state_dict()
        for key, value in expected.items():
            got = tensors.get(key)
            if got is None or got.shape != value.shape or got.dtype != value.dtype:
                found = None if got is None else f"{got.dtype} {tuple(got.shape)}"
                raise ValueError(f"{self.weights_path}: tensor {key!r} should be {value.dtype} {tuple(value.shape)}, got {found}; "
                                 f"the file does not match the run's model config. {fix}")
            if value.is_floating_point() and not torch.allclose(got, value, rtol=1e-5, atol=1e-7):
                raise ValueError(
                    f"{self.weights_path}: tensor {key!r} differs from the weights seed {self.config.seed} draws, though "
                    "its checksum holds: the file belongs to another run, or was drawn by a torch release that "
                    "initialises differently. The masks were trained on the weights in the file, so do not replace it; "
                    "evaluate the run with the torch it was trained with, or train it again into a new --out directory.")
        if set(tensors) != set(expected):
            raise ValueError(f"{self.weights_path} holds tensors {sorted(set(tensors) - set(expected))} the run's model has not. {fix}")
        model.load_state_dict(tensors)
        shared = self.read_shared()
        if shared is not None and not initial_weights:
            model.load_state_dict(shared.weights)
        model.to(device)
        saved, usable = set(self.saved_tasks()), self.trained_tasks(shared)
        num_tasks = len(usable) if num_tasks is None else num_tasks
        for task_id in range(num_tasks):
            if task_id not in saved:
                raise ValueError(f"task {task_id} has no mask file in {self.path / 'masks'}; it was never trained or its masks "
                                 "were deleted. Rerun `supsup train` with the run's options to retrain it.")
            if task_id not in usable:
                raise ValueError(f"task {task_id}'s file in {self.path / 'masks'} was written after the weights its method "
                                 "shares were last saved (an interrupted `supsup train`), so it does not fit them. Rerun "
                                 "`supsup train` with the run's options: it trains that task again.")
            self.add_frozen(model, self.read_task(task_id))
        return model

    def trained_tasks(self, shared: SharedState | None = None) -> list[int]:
        """The task ids whose task file fits the run's weights, in order: every saved task, except, for a method
        that trains shared weights, a task file written after the last shared state (``shared.safetensors``) by
        a task that trained shared weights or followed one that did (a crash lost those weights).

        ``shared`` is the run's :meth:`read_shared` where the caller has read it already.
        """
        method = self.config.build_method()
        shared = self.read_shared() if shared is None else shared
        done = shared.after_task if shared is not None else -1
        return [t for t in self.saved_tasks() if not any(method.trains_shared(j) for j in range(done + 1, t + 1))]

    def _write_weights(self, model: nn.Module) -> None:
        with self.locked():
            _save_checked(self.weights_path, model.state_dict(), {"format": WEIGHTS_FORMAT, "format_version": str(FORMAT_VERSION)})

    def add_frozen(self, model: nn.Module, task: TaskState) -> int | None:
        """Append ``task`` (read with :meth:`read_task`) to ``model`` as a frozen task; returns its id (None for a
        model without task modules)."""
        modules = task_modules(model)
        if set(task.modules) != set(modules):
            raise ValueError(
                f"a mask file of {self.path} holds the state of modules {sorted(task.modules)}, but the run's model has "
                f"task modules {sorted(modules)}; the file belongs to another run. Delete it and resume the run to retrain that task."
            )
        if not modules:  # a model with no per-task state (fine-tuning): nothing to add
            return None
        ids = {module.add_frozen_task(task.modules[name]) for name, module in modules.items()}
        if len(ids) != 1:
            raise ValueError(f"task modules took the task as ids {sorted(ids)}; the model was not at one task count")
        return ids.pop()

    # ---------------------------------------------------------- shared state
    @property
    def shared_path(self) -> Path:
        return self.path / "shared.safetensors"

    def _shared_layout(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """The weights all tasks share, by state_dict key: shape and dtype (those of the model with no task)."""
        if self._shared_key_cache is None:
            self._shared_key_cache = {key: (tuple(value.shape), value.dtype) for key, value in self.fixed_model().state_dict().items()}
        return self._shared_key_cache

    def write_shared(self, model: nn.Module, task_id: int, optimizer: torch.optim.Optimizer | None) -> Path:
        """Write, in one atomic file, the shared weights after ``task_id`` and the optimizer kept over them.

        For methods that train weights every task shares (PSP, fine-tuning, BatchEnsemble's first task):
        a resumed run starts the next task from exactly this state, so it ends as an uninterrupted one.
        """
        tensors, entries = shared_state_tensors(model, list(self._shared_layout()), optimizer)
        meta = {"format": SHARED_FORMAT, "format_version": str(FORMAT_VERSION), "after_task": str(task_id), **entries}
        with self.locked():
            return _save_checked(self.shared_path, tensors, meta)

    def read_shared(self) -> SharedState | None:
        """The shared state :meth:`write_shared` wrote last (None if there is none), verified."""
        if not self.shared_path.exists():
            return None
        fix = ("The shared weights cannot be rebuilt without retraining every task after them: train the run again "
               "into a new --out directory with the same options.")
        tensors, meta = _load_checked(self.shared_path, what="shared weights", fmt=SHARED_FORMAT, fix=fix)
        return shared_state_from_tensors(tensors, meta, self._shared_layout(), where=self.shared_path, fix=fix)

    # ----------------------------------------------------------------- masks
    def mask_path(self, task_id: int) -> Path:
        return self.path / "masks" / f"task_{task_id:03d}.safetensors"

    def scores_path(self, task_id: int) -> Path:
        return self.path / "scores" / f"task_{task_id:03d}.safetensors"

    def saved_tasks(self) -> list[int]:
        """Task ids with a mask file, in order (``ValueError`` if a mask path is not a file)."""
        folder = self.path / "masks"
        paths = [p for p in folder.glob("task_*.safetensors") if p.stem[5:].isdigit()] if folder.is_dir() else []
        for p in paths:
            if not p.is_file():
                raise ValueError(f"{p} is not a file (a directory?); remove it and rerun `supsup train` with the run's "
                                 "options to retrain that task.")
        return sorted(int(p.stem[5:]) for p in paths)

    def _retrain_fix(self, task_id: int) -> str:
        return (f"Delete {self.mask_path(task_id)} and rerun `supsup train` with the run's options to retrain task {task_id} "
                "(its seed gives the same mask again; no other task changes).")

    def write_task(self, model: nn.Module, task_id: int) -> Path:
        """Write every task module's state of ``task_id``: boolean tensors bit-packed, others as they are."""
        tensors, entries = task_state_tensors(model, task_id)
        meta = {"format": MASK_FORMAT, "format_version": str(FORMAT_VERSION), "task_id": str(task_id), **entries}
        with self.locked():
            return _save_checked(self.mask_path(task_id), tensors, meta)

    def read_task(self, task_id: int) -> TaskState:
        """Read and validate the mask file of ``task_id`` (format, checksum, layout)."""
        path, fix = self.mask_path(task_id), self._retrain_fix(task_id)
        tensors, meta = _load_checked(path, what=f"mask file of task {task_id}", fmt=MASK_FORMAT, fix=fix)
        if meta.get("task_id") != str(task_id):
            raise ValueError(f"{path} holds task {meta.get('task_id')!r}, not {task_id}; it was renamed. {fix}")
        return task_state_from_tensors(tensors, meta, where=path, fix=fix)

    def delete_task_masks(self, task_id: int) -> None:
        """Remove the mask file of ``task_id`` (e.g. once a Hopfield memory holds it)."""
        with self.locked():
            self.mask_path(task_id).unlink(missing_ok=True)

    def mask_bytes(self, task_id: int) -> int:
        """Size in bytes of the mask file of ``task_id``."""
        return self.mask_path(task_id).stat().st_size

    def write_scores(self, model: nn.Module, task_id: int) -> Path:
        """Write the real-valued scores of ``task_id`` (before it is frozen) by layer name."""
        scores = {name: layer.task_scores(task_id).detach() for name, layer in modes.masked_layers(model).items()}
        meta = {"format": SCORES_FORMAT, "format_version": str(FORMAT_VERSION), "task_id": str(task_id)}
        with self.locked():
            return _save_checked(self.scores_path(task_id), scores, meta)

    def read_scores(self, task_id: int) -> dict[str, torch.Tensor]:
        """The scores of ``task_id`` by layer name (the run must have been made with save_scores)."""
        path = self.scores_path(task_id)
        if not path.exists():
            raise ValueError(f"no scores saved for task {task_id} in {self.path}; train the run with --save-scores.")
        fix = (f"Scores are written only when a task trains: delete {path} and {self.mask_path(task_id)} and rerun "
               f"`supsup train` with the run's options to retrain task {task_id}.")
        tensors, meta = _load_checked(path, what=f"scores of task {task_id}", fmt=SCORES_FORMAT, fix=fix)
        if meta.get("task_id") != str(task_id):
            raise ValueError(f"{path} holds scores of task {meta.get('task_id')}, not {task_id}; the file was renamed. {fix}")
        return tensors

    # --------------------------------------------------------------- results
    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def read_results_data(self) -> dict[str, Any]:
        """results.json as a JSON object, or ``{}`` when there is none yet (whatever the scenario that wrote it)."""
        if not self.results_path.exists():
            return {}
        data = read_json(self.results_path, what="run results")
        if not isinstance(data, dict):
            raise ValueError(f"{self.results_path} holds {type(data).__name__}, not the run's results object. {_RESULTS_FIX}")
        return data

    def scenario(self) -> str | None:
        """The scenario results.json records: ``"GG"`` (task by task), ``"NN"``, or None before any result."""
        data = self.read_results_data()
        return data.get("scenario", "GG") if data else None

    def read_results(self) -> RunResults:
        """results.json of a task-by-task run, or empty results (no finished task) when there is none yet."""
        return self._results_of(self.read_results_data())

    def _results_of(self, data: dict[str, Any]) -> RunResults:
        if data.get("scenario", "GG") != "GG":
            raise ValueError(f"{self.path} holds an {data['scenario']} run (masks allocated without task ids), not one "
                             "trained task by task; evaluate it with `supsup evaluate --scenario GNs`.")
        try:
            return RunResults.from_dict(data, fix=_RESULTS_FIX) if data else RunResults(method=self.config.method)
        except ValueError as err:
            raise ValueError(f"{self.results_path}: {err}") from err

    def finished_tasks(self) -> set[int]:
        """The tasks trained and evaluated (empty for a run that is not trained task by task)."""
        data = self.read_results_data()
        return self._results_of(data).finished_tasks if data.get("scenario", "GG") == "GG" else set()

    @property
    def results_csv_path(self) -> Path:
        return self.path / "results.csv"

    def write_results(self, results: _Results) -> Path:
        """Write ``results`` (a results dataclass: :class:`RunResults`, or the NN scenario's) atomically, and, for
        results that have a CSV form (:meth:`RunResults.to_csv`), results.csv beside it."""
        with self.locked():
            path = write_json(self.results_path, results.to_dict())
            to_csv = getattr(results, "to_csv", None)
            if to_csv is not None:
                atomic_write_bytes(self.results_csv_path, to_csv().encode("utf-8"))
            return path
