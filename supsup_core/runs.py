"""Run directories: config, fixed weights written once, one bit-packed mask file per task, results.

Layout::

    RUN/config.json                 RunConfig (format_version, seed, save_scores, model, stream, train)
    RUN/weights.safetensors         the fixed random weights (model state with no task), written once
    RUN/masks/task_000.safetensors  task 0: "mask.<layer>" packed uint8 (ceil(numel/8),) per masked layer,
                                    "state.<module>.<key>" per-task BatchNorm statistics; metadata JSON
    RUN/scores/task_000.safetensors task 0's float scores by layer (only with save_scores)
    RUN/results.json                accuracy_matrix (row i: tasks 0..i after training task i) and metrics

Every file is written atomically, so a crash leaves each one either complete or absent.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from hopfield_masks.io import load_tensors, read_json, save_tensors, write_json
from hopfield_masks.patterns import pack_bits, unpack_bits
from supsup_core import modes
from supsup_core.models import ModelConfig, build_model
from supsup_core.resnets import TaskBatchNorm2d
from supsup_core.streams import StreamConfig
from supsup_core.training import TrainConfig

__all__ = ["RunConfig", "TaskMasks", "RunDirectory", "FORMAT_VERSION", "MASK_FORMAT"]

FORMAT_VERSION = 1
MASK_FORMAT = "supsup-task-masks"


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
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"run config has format_version {data.get('format_version')!r}; this code reads {FORMAT_VERSION}.")
        try:
            return cls(model=ModelConfig.from_dict(data["model"]), stream=StreamConfig.from_dict(data["stream"]),
                       train=TrainConfig.from_dict(data["train"]), seed=int(data["seed"]), save_scores=bool(data["save_scores"]),
                       transfer=bool(data.get("transfer", False)))
        except (KeyError, TypeError) as err:
            raise ValueError(f"run config is missing or has malformed fields ({err}); re-create the run.") from err


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


class RunDirectory:
    """A run on disk. Use :meth:`create` (new or resumed) or :meth:`open` (existing)."""

    def __init__(self, path: str | os.PathLike, config: RunConfig) -> None:
        self.path = Path(path)
        self.config = config

    # ------------------------------------------------------------------ open
    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> "RunDirectory":
        """Start a run in ``path``, or continue the one there if its config is the same (else ``ValueError``)."""
        path = Path(path)
        if (path / "config.json").exists():
            run = cls.open(path)
            changes = _diff(run.config.to_dict(), config.to_dict())
            if changes:
                raise ValueError(
                    f"{path} holds a run with a different config ({'; '.join(changes)}); a run resumes only with the "
                    "options it was started with. Repeat the original options or choose a new --out directory."
                )
            return run
        if path.exists() and any(path.iterdir()):
            raise ValueError(f"{path} exists, is not empty and holds no run (no config.json); choose a new --out directory.")
        run = cls(path, config)
        model = run.fixed_model()  # validates the model config before anything is written
        write_json(path / "config.json", config.to_dict())
        run._write_weights(model)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDirectory":
        """Open an existing run (its config.json must be readable)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a run directory: it has no config.json. Create one with `supsup train --out {path}`.")
        return cls(path, RunConfig.from_dict(read_json(path / "config.json", what="run config")))

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
        """
        model = self.fixed_model()
        if not self.weights_path.exists():  # a crash right after config.json
            self._write_weights(model)
        tensors, _ = load_tensors(self.weights_path, what="fixed weights")
        expected = model.state_dict()
        if set(tensors) != set(expected) or any(tensors[k].shape != v.shape for k, v in expected.items()):
            raise ValueError(f"{self.weights_path} does not match the run's model config; the run directory is inconsistent. Start a new run.")
        model.load_state_dict(tensors)
        model.to(device)
        saved = self.saved_tasks()
        num_tasks = len(saved) if num_tasks is None else num_tasks
        for task_id in range(num_tasks):
            if task_id not in saved:
                raise ValueError(f"task {task_id} has no mask file in {self.path / 'masks'}; it was never trained or its masks were deleted.")
            self._add_frozen(model, self.read_task(task_id))
        return model

    def _write_weights(self, model: nn.Module) -> None:
        save_tensors(self.weights_path, model.state_dict(), {"format": "supsup-weights", "format_version": str(FORMAT_VERSION)})

    def _add_frozen(self, model: nn.Module, task: TaskMasks) -> None:
        layers, modules = modes.masked_layers(model), _task_modules(model)
        if set(task.masks) != set(layers) or set(task.state) != set(modules):
            raise ValueError(
                f"a mask file of {self.path} names layers {sorted(task.masks)} and per-task modules {sorted(task.state)}, "
                f"but the run's model has {sorted(layers)} and {sorted(modules)}; the file belongs to another run. "
                "Delete it and resume the run to retrain that task."
            )
        for name, layer in layers.items():
            layer.add_frozen_task(task.masks[name])
        for name, module in modules.items():
            module.load_task_state(module.add_task(), task.state[name])

    # ----------------------------------------------------------------- masks
    def mask_path(self, task_id: int) -> Path:
        return self.path / "masks" / f"task_{task_id:03d}.safetensors"

    def scores_path(self, task_id: int) -> Path:
        return self.path / "scores" / f"task_{task_id:03d}.safetensors"

    def saved_tasks(self) -> list[int]:
        """Task ids with a mask file, in order."""
        folder = self.path / "masks"
        ids = [int(p.stem[5:]) for p in folder.glob("task_*.safetensors") if p.stem[5:].isdigit()] if folder.is_dir() else []
        return sorted(ids)

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
        return save_tensors(self.mask_path(task_id), tensors, meta)

    def read_task(self, task_id: int) -> TaskMasks:
        """Read and validate the mask file of ``task_id``."""
        path = self.mask_path(task_id)
        tensors, meta = load_tensors(path, what=f"mask file of task {task_id}")
        if meta.get("format") != MASK_FORMAT or meta.get("format_version") != str(FORMAT_VERSION) or meta.get("task_id") != str(task_id):
            raise ValueError(
                f"{path} is not a version-{FORMAT_VERSION} mask file of task {task_id} (metadata {meta}); "
                "it was written by other code or renamed. Delete it and resume the run to retrain the task."
            )
        masks = {}
        for name, info in json.loads(meta["masks"]).items():
            numel = math.prod(info["shape"])
            packed = tensors.get(f"mask.{name}")
            if packed is None or packed.dtype != torch.uint8 or packed.numel() != math.ceil(numel / 8):
                raise ValueError(f"{path}: mask of layer {name!r} is missing or has the wrong size; the file is corrupted.")
            masks[name] = unpack_bits(packed, numel).bool().view(info["shape"])
        state: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("state."):
                module, _, field = key[len("state."):].rpartition(".")
                state.setdefault(module, {})[field] = value
        return TaskMasks(masks, state)

    def delete_task_masks(self, task_id: int) -> None:
        """Remove the mask file of ``task_id`` (e.g. once a Hopfield memory holds it)."""
        self.mask_path(task_id).unlink(missing_ok=True)

    def mask_bytes(self, task_id: int) -> int:
        """Size in bytes of the mask file of ``task_id``."""
        return self.mask_path(task_id).stat().st_size

    def write_scores(self, model: nn.Module, task_id: int) -> Path:
        """Write the real-valued scores of ``task_id`` (before it is frozen) by layer name."""
        scores = {name: layer.task_scores(task_id).detach() for name, layer in modes.masked_layers(model).items()}
        meta = {"format": "supsup-task-scores", "format_version": str(FORMAT_VERSION), "task_id": str(task_id)}
        return save_tensors(self.scores_path(task_id), scores, meta)

    def read_scores(self, task_id: int) -> dict[str, torch.Tensor]:
        """The scores of ``task_id`` by layer name (the run must have been made with save_scores)."""
        if not self.scores_path(task_id).exists():
            raise ValueError(f"no scores saved for task {task_id} in {self.path}; train the run with --save-scores.")
        tensors, meta = load_tensors(self.scores_path(task_id), what=f"scores of task {task_id}")
        if meta.get("task_id") != str(task_id):
            raise ValueError(f"{self.scores_path(task_id)} holds scores of task {meta.get('task_id')}, not {task_id}; the file was renamed.")
        return tensors

    # --------------------------------------------------------------- results
    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def read_results(self) -> dict[str, Any]:
        """results.json, or an empty result (no finished task) when there is none yet."""
        if not self.results_path.exists():
            return {"accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []}
        results = read_json(self.results_path, what="run results")
        if not isinstance(results.get("accuracy_matrix"), list):
            raise ValueError(f"{self.results_path} has no accuracy_matrix; it was not written by `supsup train`.")
        return results

    def finished_tasks(self) -> int:
        """Number of tasks trained and evaluated (rows of the accuracy matrix)."""
        return len(self.read_results()["accuracy_matrix"])

    def write_results(self, results: Mapping[str, Any]) -> Path:
        return write_json(self.results_path, dict(results))
