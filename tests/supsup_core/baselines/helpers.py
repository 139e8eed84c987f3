"""Tiny baseline runs on the 8×8 digits for the baseline, trainer and CLI tests: configs, training, what a run wrote."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, TaskStream, build_stream
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import RunResult, train_run
from supsup_core.train.methods import method_train_config
from supsup_core.train.runs import RunConfig, RunDirectory

BASELINES = ("psp-rotation", "psp-complex", "psp-binary", "batchensemble", "finetune", "finetune-multihead", "separate")
"""Every registered method but SupSup."""


def tiny_model(num_tasks: int = 0, **fields) -> ModelConfig:
    """LeNet 64-16-5-10 on the 8×8 digits."""
    return ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=num_tasks, width=16, **fields)


def run_config(method: str, *, num_tasks: int = 3, seed: int = 1, output_size: int = 10, context_powers: bool = False,
               **train) -> RunConfig:
    """A ``num_tasks``-task permuted-digits run of ``method`` with its reference optimizer settings, 8 batches a task."""
    return RunConfig(model=tiny_model(output_size=output_size),
                     stream=StreamConfig(dataset="permuted-mnist", num_tasks=num_tasks, seed=1),
                     train=method_train_config(method, **{"iterations": 8, "batch_size": 32, **train}),
                     seed=seed, method=method, context_powers=context_powers)


def stream_of(config: RunConfig) -> TaskStream:
    return build_stream(config.stream, data=load_digits())


def train(path: Path, config: RunConfig, **kw) -> RunResult:
    """Create (or resume) the run in ``path`` and train it; ``kw`` goes to :func:`train_run`."""
    with RunDirectory.create(path, config) as run:
        return train_run(run, stream=stream_of(config), **kw)


def resume(path: Path, **kw) -> RunResult:
    """Resume the run in ``path`` with :func:`train_run`, as a later process would."""
    run = RunDirectory.open(path)
    return train_run(run, stream=stream_of(run.config), **kw)


def interrupt_after(task_id: int):
    """An ``on_task_end`` that stops the run once ``task_id``'s row is written (a kill at the task boundary)."""
    def stop(t, row):
        if t == task_id:
            raise KeyboardInterrupt(f"stopped after task {t}")
    return stop


def run_bytes(path: Path) -> dict[str, bytes]:
    """Every task file and the shared state of the run in ``path``, by path inside the run."""
    files = sorted(Path(path).glob("masks/*.safetensors")) + sorted(Path(path).glob("shared.safetensors"))
    return {str(p.relative_to(path)): p.read_bytes() for p in files}


def all_bytes(path: Path) -> dict[str, bytes]:
    """Every file of the run in ``path`` but its lock."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file() and p.name != ".lock"}


def accuracies(path: Path) -> dict:
    """The accuracies results.json holds (no timings)."""
    results = json.loads((Path(path) / "results.json").read_text())
    return {key: results.get(key) for key in ("accuracy_matrix", "accuracy_matrix_full", "initial_accuracy", "fwt")}


def flip_data_bit(path: Path, at: int = 0) -> None:
    """Flip the lowest bit of byte ``at`` of a safetensors file's data section (after its header)."""
    raw = bytearray(path.read_bytes())
    raw[8 + int.from_bytes(raw[:8], "little") + at] ^= 1
    path.write_bytes(bytes(raw))


def fixed_inputs(n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` inputs of shape (1, 8, 8) to compare a model's outputs on."""
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def assert_refuses_state(layer, state, match: str) -> None:
    """``layer`` (holding no task) refuses ``state`` as a frozen or a new task with ``match``, and still holds none."""
    for add in (layer.add_frozen_task, layer.add_task):
        with pytest.raises(ValueError, match=match):
            add(state)
    assert layer.num_tasks == 0


def assert_refuses_missing_tasks(layer) -> None:
    """A one-task ``layer`` refuses tasks -1 and 1 in every per-task call, naming add_task()."""
    for call in (layer.set_task, layer.task_state, layer.task_parameters, layer.freeze_task):
        for task_id in (-1, 1):
            with pytest.raises(ValueError, match=rf"task_id {task_id} is out of range: this layer holds 1 task\(s\); "
                                                 r"call add_task\(\) first"):
                call(task_id)
