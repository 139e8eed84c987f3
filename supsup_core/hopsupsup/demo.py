"""The whole HopSupSup pipeline in one call: train, encode, delete the masks, recover, score, plot."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from hopfield_masks import BACKENDS, RULES, load_memory
from hopfield_masks.backends import memory_class
from hopfield_masks.io import write_json
from supsup_core.checks import check_choice
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.hopsupsup.encode import encode_run
from supsup_core.hopsupsup.methods import MethodConfig, recovery_config
from supsup_core.hopsupsup.plot import plot_recovery
from supsup_core.hopsupsup.report import RunRecovery, read_true_masks, recover_run
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import RunResult, train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

log = logging.getLogger(__name__)

MARKER = ".supsup-demo"
"""A file the demo leaves in its output folder, so a rerun may replace that folder and nothing else."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo trains and how it recovers.

    The defaults follow the reference HopSupSup setup (DESIGN §2): SplitMNIST-style class pairs, BNNet
    neuron masks (d = 2 × 2048), SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, scores from 0.
    The memory and recovery options are checked here, so a bad one is refused before anything is trained.

    Parameters
    ----------
    data_dir : str, optional
        A folder of MNIST IDX files (default: scikit-learn's built-in 8x8 digits).
    num_tasks : int
        Class-pair tasks, 1 to 5.
    epochs : float
        Training epochs per task.
    rule, backend : str
        The memory's learning rule (a key of ``hopfield_masks.RULES``) and backend ("auto", "dense", "implicit").
    method : str
        A key of ``RECOVERY_METHODS``.
    steps : int
        At most this many descent steps per task.
    seed : int
    """

    data_dir: str | None = None
    num_tasks: int = 5
    epochs: float = 3.0
    rule: str = "pseudoinverse"
    backend: str = "implicit"
    method: str = "steered"
    steps: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice(self.rule, "rule", RULES, fix="Choose a learning rule of hopfield_masks.RULES.")
        check_choice(self.backend, "backend", ("auto", *BACKENDS))
        if self.backend != "auto":
            memory_class(self.rule, self.backend)  # refuses a backend the rule has no form for, e.g. storkey implicit
        self.recovery_config()  # checks method and steps

    def run_config(self) -> RunConfig:
        stream = StreamConfig(dataset="split-mnist", num_tasks=self.num_tasks, seed=self.seed, data_dir=self.data_dir)
        input_shape = build_stream(stream, "cpu").input_shape
        model = ModelConfig(name="bnnet", input_shape=input_shape, num_tasks=0, output_size=10)
        train = TrainConfig(epochs=self.epochs, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
        return RunConfig(model=model, stream=stream, train=train, seed=self.seed)

    def recovery_config(self) -> MethodConfig:
        """The config of ``method`` with at most ``steps`` descent steps, its other knobs at their defaults."""
        return recovery_config(self.method, steps=self.steps)


class DemoResult(NamedTuple):
    """Paths and results of a demo run."""

    training: RunResult
    recovery: RunRecovery
    run_dir: Path
    store_path: Path
    json_path: Path
    plot_path: Path
    data_note: str


def run_demo(out: str | os.PathLike, config: DemoConfig = DemoConfig(), *, device: torch.device | str = "cpu",
             progress: bool = False) -> DemoResult:
    """Train, encode every task's masks into a Hopfield store, delete the mask files, recover and score.

    ``out`` must be new, empty or an earlier demo's output (which is replaced). Writes ``out/run`` (the
    run; its ``masks/`` folder is emptied after encoding), ``out/store.safetensors``, ``out/recovery.json``
    and ``out/recovery.png``. The true masks are kept in memory only to score the recovered ones; recovery
    itself reads the fixed weights and the store.

    Parameters
    ----------
    out : path of the output folder
    config : DemoConfig
    device : torch.device or str
    progress : bool
        Show progress bars.

    Returns
    -------
    DemoResult
    """
    out = Path(out)
    run_dir, store_path = out / "run", out / "store.safetensors"
    run_config = config.run_config()  # checked (and the data found) before anything is written
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise ValueError(f"{out} already exists and was not written by the demo; give the demo a new or empty --out folder.")
        log.info("replacing the earlier demo output in %s", out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `supsup demo`; a rerun replaces this folder\n")
    run = RunDirectory.create(run_dir, run_config)
    stream = build_stream(run.config.stream, device)
    log.info("training %d tasks on %s", config.num_tasks, stream.note)
    training = train_run(run, device=device, stream=stream, progress=progress)

    memory = encode_run(run, rule=config.rule, backend=config.backend, device=device)
    memory.save(store_path)
    answer_key = read_true_masks(run, memory.count)  # for scoring only
    for task_id in run.saved_tasks():
        run.delete_task_masks(task_id)
    log.info("encoded %d tasks into %s and deleted the run's mask files", memory.count, store_path)

    recovery = recover_run(run, load_memory(store_path, device=device), method=config.method,
                           config=config.recovery_config(), seed=config.seed, device=device, stream=stream,
                           true_masks=answer_key, progress=progress)
    json_path = write_json(out / "recovery.json", {"demo": config.__dict__, "data": stream.note,
                                                   "training": training.metrics, **recovery.to_json()})
    plot_path = plot_recovery(recovery, out / "recovery.png")
    return DemoResult(training, recovery, run_dir, store_path, json_path, plot_path, stream.note)
