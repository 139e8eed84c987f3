"""Recover every task of a run from its mask store, and score the recovered masks honestly.

Recovery sees only the fixed weights, the store and unlabelled test images of one task at a time. The
true masks (when the run still has them, or when a caller kept them aside) and the labels are used
afterwards, only to count bit errors and measure accuracy.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import torch
from tqdm.auto import tqdm

from hopfield_masks import HopfieldMemory
from hopfield_masks.recovery import RecoveryConfig, SteerConfig
from supsup_core.data.streams import TaskStream, build_stream
from supsup_core.hopsupsup.pipeline import (
    check_store_matches,
    check_store_of_run,
    masked_accuracy,
    recover_task,
    recovery_batches,
)
from supsup_core.train.runs import RunDirectory

__all__ = ["RunRecovery", "recover_run", "read_true_masks"]


class RunRecovery(NamedTuple):
    """Scores of a whole run's recovery; ``to_json()`` gives the DESIGN §5 record.

    tasks : list of dict, one per task: task_id, bit_errors, bits, accuracy, gg_accuracy, steps, seconds,
        and the per-step traces bit_errors_per_step, entropy_per_step, energy_per_step
    mean_accuracy : float, mean test accuracy with the recovered masks
    mean_gg_accuracy : float or None, the same with the true masks (None without them)
    exact_recoveries : int or None, tasks recovered with zero bit errors (None without true masks)
    """

    method: str
    tasks: list[dict[str, Any]]
    mean_accuracy: float
    mean_gg_accuracy: float | None
    exact_recoveries: int | None
    seconds_per_task: float
    store_bytes: int
    packed_mask_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "num_tasks": len(self.tasks),
            "mean_accuracy": self.mean_accuracy,
            "mean_gg_accuracy": self.mean_gg_accuracy,
            "exact_recoveries": self.exact_recoveries,
            "seconds_per_task": self.seconds_per_task,
            "store_bytes": self.store_bytes,
            "packed_mask_bytes": self.packed_mask_bytes,
            "tasks": self.tasks,
        }


def read_true_masks(run: RunDirectory, num_tasks: int) -> dict[int, dict[str, torch.Tensor]] | None:
    """The run's saved masks of tasks ``0..num_tasks-1`` for scoring, or None if any were deleted."""
    saved = set(run.saved_tasks())
    if not all(t in saved for t in range(num_tasks)):
        return None
    return {t: {name: m.float() for name, m in run.read_task(t).masks.items()} for t in range(num_tasks)}


def recover_run(
    run: RunDirectory,
    memory: HopfieldMemory,
    *,
    method: str = "steered",
    config: RecoveryConfig | SteerConfig | None = None,
    batch_size: int = 64,
    seed: int = 0,
    device: torch.device | str = "cpu",
    true_masks: Mapping[int, Mapping[str, torch.Tensor]] | None = None,
    stream: TaskStream | None = None,
    progress: bool = False,
    force: bool = False,
) -> RunRecovery:
    """Recover the mask of every task stored in ``memory`` and score it.

    Parameters
    ----------
    run : RunDirectory
        Supplies the fixed weights and the data stream config; its mask files are never read here.
    memory : HopfieldMemory
        The store encoded from ``run`` (pattern i is task i).
    method, config
        See :func:`supsup_core.hopsupsup.pipeline.recover_task`.
    batch_size : int
        Unlabelled test images per descent step (64 in the reference).
    seed : int
        Seeds the order of the test images.
    true_masks : mapping task id -> layer masks, optional
        Used only for scoring (bit errors, GG accuracy). Pass :func:`read_true_masks` to score against
        the run's files; without it those fields are None.
    stream : TaskStream, optional
        Default: rebuilt from the run's config.
    progress : bool
        Show a progress bar over tasks.
    force : bool
        Recover even if the store records another run's weights (see ``check_store_of_run``; it warns).

    Returns
    -------
    RunRecovery
    """
    model = run.load_model(device, num_tasks=0)  # fixed weights only: no task masks are loaded
    layout = check_store_matches(memory, model)
    check_store_of_run(memory, run, force=force)
    stream = stream if stream is not None else build_stream(run.config.stream, device)
    if memory.count > stream.num_tasks:
        raise ValueError(f"the store holds {memory.count} patterns but the run's stream has only {stream.num_tasks} tasks; "
                         "was the store encoded from another run?")
    rows = []
    for task_id in tqdm(range(memory.count), desc=f"recover ({method})", disable=not progress):
        data = stream.test_set(task_id)
        generator = torch.Generator().manual_seed(seed * 100_003 + task_id)
        batches = recovery_batches(data, batch_size=batch_size, generator=generator)
        found = recover_task(model, memory, batches, real_outputs=stream.num_classes, method=method, config=config)
        row: dict[str, Any] = {
            "task_id": task_id,
            "bit_errors": None,
            "bits": layout.dim,
            "accuracy": masked_accuracy(model, found.masks, data, num_classes=stream.num_classes),
            "gg_accuracy": None,
            "steps": found.steps,
            "attempts": found.attempts,
            "seconds": found.seconds,
            "entropy_per_step": found.result.trace.entropy,
            "energy_per_step": found.result.trace.energy,
            "bit_errors_per_step": None,
        }
        if true_masks is not None:
            truth = layout.flatten({k: v.float() for k, v in true_masks[task_id].items()}).to(found.state.device)
            true_state = truth * 2 - 1
            row["bit_errors"] = int((found.state != true_state).sum())
            row["bit_errors_per_step"] = [int((s.float() != true_state).sum()) for s in found.result.trace.states]
            row["gg_accuracy"] = masked_accuracy(model, true_masks[task_id], data, num_classes=stream.num_classes)
        rows.append(row)
    count = len(rows)
    scored = true_masks is not None
    return RunRecovery(
        method=method,
        tasks=rows,
        mean_accuracy=sum(r["accuracy"] for r in rows) / count,
        mean_gg_accuracy=sum(r["gg_accuracy"] for r in rows) / count if scored else None,
        exact_recoveries=sum(r["bit_errors"] == 0 for r in rows) if scored else None,
        seconds_per_task=sum(r["seconds"] for r in rows) / count,
        store_bytes=memory.nbytes,
        packed_mask_bytes=count * ((layout.dim + 7) // 8),
    )
