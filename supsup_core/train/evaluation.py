"""Evaluate a trained run: every stored task's test accuracy with its own mask (the GG scenario)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from supsup_core.data.streams import TaskStream, build_stream
from supsup_core.train.continual import check_compatible
from supsup_core.train.runs import RunDirectory
from supsup_core.train.training import evaluate_task

__all__ = ["EvaluationResult", "evaluate_gg"]


class EvaluationResult(NamedTuple):
    """``per_task_accuracy[t]`` is task ``t``'s test accuracy; ``average_accuracy`` their mean."""

    per_task_accuracy: list[float]
    average_accuracy: float


def evaluate_gg(run: RunDirectory, *, device: torch.device | str = "cpu", stream: TaskStream | None = None,
                progress: bool = False) -> EvaluationResult:
    """Test accuracy of every task with a mask file, the task id given (GG).

    Parameters
    ----------
    run : RunDirectory
    device : torch.device or str
    stream : TaskStream, optional
        Default: rebuilt from the run's stream config (same data, split and permutations).
    progress : bool
        Show a tqdm bar over tasks.
    """
    if run.scenario() == "NN":
        raise ValueError(f"{run.path} is an NN run: its masks were allocated without task ids, so GG does not apply. Use --scenario GNs or GNu.")
    stream = stream if stream is not None else build_stream(run.config.stream, device)
    check_compatible(run, stream)
    model = run.load_model(device)
    num_tasks = len(run.trained_tasks())
    if num_tasks == 0:
        raise ValueError(f"run {run.path} has no trained task yet; run `supsup train` with --out {run.path} first.")
    batch_size = run.config.train.eval_batch_size
    accuracies = [evaluate_task(model, t, stream, batch_size=batch_size)
                  for t in tqdm(range(num_tasks), desc="GG", disable=not progress, leave=False)]
    return EvaluationResult(accuracies, sum(accuracies) / len(accuracies))
