"""Run directories: config, fixed weights written once, one bit-packed mask file per task, results.

Layout::

    RUN/config.json                 RunConfig (format_version, seed, save_scores, model, stream, train)
    RUN/weights.safetensors         the fixed random weights (model state with no task), written once
    RUN/masks/task_000.safetensors  task 0: "mask.<layer>" packed uint8 (ceil(numel/8),) per masked layer,
                                    "state.<module>.<key>" per-task BatchNorm statistics; metadata JSON
    RUN/scores/task_000.safetensors task 0's float scores by layer (only with save_scores)
    RUN/results.json                accuracy_matrix (row i: tasks 0..i after training task i) and metrics
    RUN/.lock                       held (flock) by the one process writing the run, see supsup_core.train.run_lock

Every file is written atomically, so a crash leaves each one either complete or absent (plus, at worst, a
hidden ``.<name>.<random>.tmp`` file, removed the next time the run is opened for writing). Every tensor
file carries a SHA-256 ``checksum`` of its metadata and tensors, verified on every load; the weights are
also compared with the ones the run's seed draws.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple

import torch
from torch import nn

from hopfield_masks.files import tensor_checksum
from hopfield_masks.io import (
    load_tensors,
    read_json,
    save_tensors,
    temp_file_target,
    write_json,
)
from hopfield_masks.patterns import pack_bits, unpack_bits
from supsup_core.data.streams import StreamConfig
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.nn.resnets import TaskBatchNorm2d
from supsup_core.train import run_lock
from supsup_core.train.run_lock import RunBusyError
from supsup_core.train.training import TrainConfig

__all__ = ["RunConfig", "TaskMasks", "RunDirectory", "RunBusyError", "FORMAT_VERSION", "MASK_FORMAT"]

FORMAT_VERSION = 2  # 2: weights, mask and scores files carry a checksum (1 had none)
MASK_FORMAT = "supsup-task-masks"
WEIGHTS_FORMAT = "supsup-weights"
SCORES_FORMAT = "supsup-task-scores"
# atomic_write_bytes' temp files: ".<target name>.<random>.tmp" beside the target
_RUN_FILE = re.compile(r"config\.json|results\.json|weights\.safetensors|task_\d+\.safetensors")


def _is_temp_file(name: str) -> bool:
    """Whether ``name`` is the temp file of an interrupted write of one of the run's own files."""
    target = temp_file_target(name)
    return target is not None and _RUN_FILE.fullmatch(target) is not None


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results (the device does not)."""

    model: ModelConfig
    stream: StreamConfig
    train: TrainConfig
    seed: int = 0
    save_scores: bool = False
    transfer: bool = False  # start each task's scores at the mean of earlier tasks' (saved) scores

    def __post_init__(self) -> None:
        if self.transfer and not self.save_scores:
            raise ValueError(
                "transfer starts each task at the mean of the earlier tasks' scores, read back from their saved "
                "scores; set save_scores=True as well (the CLI's --transfer does)."
            )
        if self.model.num_tasks != 0:
            raise ValueError(
                f"a run's model config must have num_tasks=0 (tasks are added as they are trained); got {self.model.num_tasks}. "
                "The number of tasks is stream.num_tasks."
            )

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "seed": self.seed, "save_scores": self.save_scores, "transfer": self.transfer,
                "model": self.model.to_dict(), "stream": self.stream.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        if not isinstance(data, Mapping):
            raise ValueError(f"a run config must be a JSON object; got {type(data).__name__} {data!r:.80}. Re-create the run.")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            older = isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION
            raise ValueError(
                f"run config has format_version {version!r}; this code reads {FORMAT_VERSION}. "
                + ("That run was written before its files carried checksums, so they cannot be verified: train it "
                   "again into a new --out directory with the same options." if older else "Re-create the run.")
            )
        try:
            return cls(model=ModelConfig.from_dict(data["model"]), stream=StreamConfig.from_dict(data["stream"]),
                       train=TrainConfig.from_dict(data["train"]), seed=int(data["seed"]), save_scores=bool(data["save_scores"]),
                       transfer=bool(data.get("transfer", False)))
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"run config is missing or has malformed fields ({type(err).__name__}: {err}); re-create the run.") from err


class TaskMasks(NamedTuple):
    """One task as stored: boolean ``masks`` by layer name, per-task module ``state`` by module name."""

    masks: dict[str, torch.Tensor]
    state: dict[str, dict[str, torch.Tensor]]


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


def _task_modules(model: nn.Module) -> dict[str, TaskBatchNorm2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, TaskBatchNorm2d)}


def _save_checked(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Path:
    """Save with a ``checksum`` over ``meta`` and the tensors added to the metadata."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    return save_tensors(path, tensors, {**meta, "checksum": tensor_checksum(tensors, meta)})


def _load_checked(path: Path, *, what: str, fmt: str, fix: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a run's tensor file and verify its format, version and checksum; ``fix`` ends every error."""
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path} is not a file (a directory?); remove it. {fix}")
    tensors, meta = load_tensors(path, what=what)
    if meta.get("format") != fmt or meta.get("format_version") != str(FORMAT_VERSION):
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
                changes = _diff(cls.open(run.path).config.to_dict(), config.to_dict())
                if changes:
                    raise ValueError(
                        f"{run.path} holds a run with a different config ({'; '.join(changes)}); a run resumes only with "
                        "the options it was started with. Repeat the original options or choose a new --out directory."
                    )
                return run
            run._refuse_foreign()
            write_json(run.path / "config.json", config.to_dict())
            run._write_weights(model if model is not None else run.fixed_model())
        except BaseException:
            run.close()
            raise
        return run

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
        return build_model(self.config.model, torch.Generator().manual_seed(self.config.seed))

    def load_model(self, device: torch.device | str = "cpu", *, num_tasks: int | None = None) -> nn.Module:
        """The model with the saved fixed weights and tasks ``0..num_tasks-1`` frozen from their mask files.

        ``num_tasks`` defaults to every task with a mask file. The weights file is written on first use.
        Its checksum is verified, and its tensors must equal (up to float rounding) the ones the run's seed
        draws: a mismatch means the file belongs to another run.
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
        model.to(device)
        saved = self.saved_tasks()
        num_tasks = len(saved) if num_tasks is None else num_tasks
        for task_id in range(num_tasks):
            if task_id not in saved:
                raise ValueError(f"task {task_id} has no mask file in {self.path / 'masks'}; it was never trained or its masks "
                                 "were deleted. Rerun `supsup train` with the run's options to retrain it.")
            self.add_frozen(model, self.read_task(task_id))
        return model

    def _write_weights(self, model: nn.Module) -> None:
        with self.locked():
            _save_checked(self.weights_path, model.state_dict(), {"format": WEIGHTS_FORMAT, "format_version": str(FORMAT_VERSION)})

    def add_frozen(self, model: nn.Module, task: TaskMasks) -> int:
        """Append ``task`` (read with :meth:`read_task`) to ``model`` as a frozen task; returns its id."""
        layers, modules = modes.masked_layers(model), _task_modules(model)
        if set(task.masks) != set(layers) or set(task.state) != set(modules):
            raise ValueError(
                f"a mask file of {self.path} names layers {sorted(task.masks)} and per-task modules {sorted(task.state)}, "
                f"but the run's model has {sorted(layers)} and {sorted(modules)}; the file belongs to another run. "
                "Delete it and resume the run to retrain that task."
            )
        task_id = modes.num_tasks(model)
        for name, layer in layers.items():
            layer.add_frozen_task(task.masks[name])
        for name, module in modules.items():
            module.load_task_state(module.add_task(), task.state[name])
        return task_id

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
        """Write the binary masks (bit-packed) and per-task statistics of ``task_id``."""
        tensors, layout = {}, {}
        for name, mask in modes.task_masks(model, task_id).items():
            tensors[f"mask.{name}"] = pack_bits(mask.flatten().to(torch.uint8))
            layout[name] = {"shape": list(mask.shape), "density": float(mask.float().mean())}
        for name, module in _task_modules(model).items():
            for key, value in module.task_state(task_id).items():
                tensors[f"state.{name}.{key}"] = value
        meta = {"format": MASK_FORMAT, "format_version": str(FORMAT_VERSION), "task_id": str(task_id), "masks": json.dumps(layout)}
        with self.locked():
            return _save_checked(self.mask_path(task_id), tensors, meta)

    def read_task(self, task_id: int) -> TaskMasks:
        """Read and validate the mask file of ``task_id`` (format, checksum, layout)."""
        path, fix = self.mask_path(task_id), self._retrain_fix(task_id)
        tensors, meta = _load_checked(path, what=f"mask file of task {task_id}", fmt=MASK_FORMAT, fix=fix)
        if meta.get("task_id") != str(task_id):
            raise ValueError(f"{path} holds task {meta.get('task_id')!r}, not {task_id}; it was renamed. {fix}")
        try:
            layout = json.loads(meta.get("masks", ""))
        except json.JSONDecodeError:
            layout = None
        if not isinstance(layout, dict) or not all(
                isinstance(info, dict) and isinstance(info.get("shape"), list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in info["shape"])
                for info in layout.values()):
            raise ValueError(f"{path}: its 'masks' metadata must map each layer to {{'shape': [...], 'density': ...}}; "
                             f"got {meta.get('masks')!r:.100}. The file is corrupted. {fix}")
        masks = {}
        for name, info in layout.items():
            numel = math.prod(info["shape"])
            packed = tensors.get(f"mask.{name}")
            if packed is None or packed.dtype != torch.uint8 or packed.numel() != math.ceil(numel / 8):
                raise ValueError(f"{path}: mask of layer {name!r} is missing or has the wrong size; the file is corrupted. {fix}")
            masks[name] = unpack_bits(packed, numel).bool().view(info["shape"])
        state: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("state."):
                module, _, field = key[len("state."):].rpartition(".")
                state.setdefault(module, {})[field] = value
            elif not (key.startswith("mask.") and key[len("mask."):] in layout):
                raise ValueError(f"{path} holds a tensor {key!r} that its metadata does not describe; the file is corrupted. {fix}")
        return TaskMasks(masks, state)

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

    def read_results(self) -> dict[str, Any]:
        """results.json, or an empty result (no finished task) when there is none yet.

        The per-task lists (``accuracy_matrix``, ``mask_bytes_per_task``, ``tasks``) are checked to be lists.
        """
        if not self.results_path.exists():
            return {"accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []}
        results = read_json(self.results_path, what="run results")
        fix = ("Delete it and rerun `supsup train` with the run's options: the results of tasks whose mask files exist "
               "are rebuilt from them, without retraining.")
        if not isinstance(results, dict):
            raise ValueError(f"{self.results_path} holds {type(results).__name__}, not the run's results object. {fix}")
        for key in ("accuracy_matrix", "mask_bytes_per_task", "tasks"):
            if not isinstance(results.setdefault(key, []), list):
                raise ValueError(f"{self.results_path}: {key!r} must be a list; got {type(results[key]).__name__}. "
                                 f"It was not written by `supsup train`. {fix}")
        return results

    def finished_tasks(self) -> int:
        """Number of tasks trained and evaluated (rows of the accuracy matrix)."""
        return len(self.read_results()["accuracy_matrix"])

    def write_results(self, results: Mapping[str, Any]) -> Path:
        with self.locked():
            return write_json(self.results_path, dict(results))
