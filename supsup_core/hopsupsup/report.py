"""Recover every task of a run from its mask store, and score the recovered masks honestly.

Recovery sees only the fixed weights, the store and unlabelled test images of one task at a time. The
true masks (when the run still has them, or when a caller kept them aside) and the labels are used
afterwards, only to count bit errors and measure accuracy.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from hopfield_masks import HopfieldMemory, MaskLayout
from hopfield_masks.seeding import seeded_generator
from supsup_core.data.streams import TaskStream, build_stream
from supsup_core.hopsupsup.encode import (
    check_store_matches,
    check_store_of_run,
    packed_mask_nbytes,
)
from supsup_core.hopsupsup.methods import MethodConfig
from supsup_core.hopsupsup.recover import (
    RECOVERY_STREAM,
    masked_accuracy,
    recover_task,
    recovery_batches,
)
from supsup_core.train.runs import RunDirectory

__all__ = ["TaskReport", "RunRecovery", "recover_run", "read_true_masks"]


class TaskReport(NamedTuple):
    """The results of one recovered task; ``_asdict()`` gives its JSON record (DESIGN §5).

    task_id : int
    bit_errors : int or None, bits of the recovered pattern that differ from the true mask (None without it)
    bits : int, d, the mask bits per task
    accuracy : float, test accuracy with the recovered masks
    gg_accuracy : float or None, test accuracy with the true masks (task given; None without them)
    steps : int, descent steps over all attempts
    attempts : int, descents run (1 plus retries)
    seconds : float, wall time of the recovery
    entropy_per_step, energy_per_step : list of float, the last attempt's trace
    bit_errors_per_step : list of int or None, bit errors of ``sign(z)`` after each step of the last attempt
    """

    task_id: int
    bit_errors: int | None
    bits: int
    accuracy: float
    gg_accuracy: float | None
    steps: int
    attempts: int
    seconds: float
    entropy_per_step: list[float]
    energy_per_step: list[float]
    bit_errors_per_step: list[int] | None


class RunRecovery(NamedTuple):
    """Results of a whole run's recovery; ``to_json()`` gives the DESIGN §5 record.

    method : str, the recovery method
    tasks : list of TaskReport, one per task in task order
    mean_accuracy : float, mean test accuracy with the recovered masks
    mean_gg_accuracy : float or None, the same with the true masks (None without them)
    exact_recoveries : int or None, tasks recovered with zero bit errors (None without true masks)
    seconds_per_task : float, mean wall time of a task's recovery
    store_bytes : int, the memory's bytes
    packed_mask_bytes : int, the bytes of the same masks packed 8 bits to a byte
    """

    method: str
    tasks: list[TaskReport]
    mean_accuracy: float
    mean_gg_accuracy: float | None
    exact_recoveries: int | None
    seconds_per_task: float
    store_bytes: int
    packed_mask_bytes: int

    def to_json(self) -> dict[str, Any]:
        """The JSON record: the totals, then ``"tasks"``, one record per task."""
        return {
            "method": self.method,
            "num_tasks": len(self.tasks),
            "mean_accuracy": self.mean_accuracy,
            "mean_gg_accuracy": self.mean_gg_accuracy,
            "exact_recoveries": self.exact_recoveries,
            "seconds_per_task": self.seconds_per_task,
            "store_bytes": self.store_bytes,
            "packed_mask_bytes": self.packed_mask_bytes,
            "tasks": [task._asdict() for task in self.tasks],
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
    config: MethodConfig | None = None,
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
        See :func:`supsup_core.hopsupsup.recover.recover_task` (and ``recovery_config``).
    batch_size : int
        Unlabelled test images per descent step (64 in the reference).
    seed : int
        Seeds the order of the test images: task t's from ``seeded_generator(seed, t, RECOVERY_STREAM)``.
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
    run.require_masks("recovering masks from a Hopfield memory")
    model = run.load_model(device, num_tasks=0)  # fixed weights only: no task masks are loaded
    layout = check_store_matches(memory, model)
    check_store_of_run(memory, run, force=force)
    stream = stream if stream is not None else build_stream(run.config.stream, device)
    if memory.count > stream.num_tasks:
        raise ValueError(f"the store holds {memory.count} patterns but the run's stream has only {stream.num_tasks} tasks; "
                         "was the store encoded from another run?")
    rows = [_recover_and_score(model, memory, layout, stream, task_id, method=method, config=config,
                               batch_size=batch_size, seed=seed, true_masks=true_masks)
            for task_id in tqdm(range(memory.count), desc=f"recover ({method})", disable=not progress)]
    count = len(rows)
    scored = true_masks is not None
    return RunRecovery(
        method=method,
        tasks=rows,
        mean_accuracy=sum(r.accuracy for r in rows) / count,
        mean_gg_accuracy=sum(r.gg_accuracy for r in rows) / count if scored else None,
        exact_recoveries=sum(r.bit_errors == 0 for r in rows) if scored else None,
        seconds_per_task=sum(r.seconds for r in rows) / count,
        store_bytes=memory.nbytes,
        packed_mask_bytes=packed_mask_nbytes(count, layout.dim),
    )


def _recover_and_score(model: nn.Module, memory: HopfieldMemory, layout: MaskLayout, stream: TaskStream,
                       task_id: int, *, method: str, config: MethodConfig | None, batch_size: int, seed: int,
                       true_masks: Mapping[int, Mapping[str, torch.Tensor]] | None) -> TaskReport:
    """Recover task ``task_id`` from its unlabelled test images, then score it (against ``true_masks`` if given)."""
    data = stream.test_set(task_id)
    batches = recovery_batches(data, batch_size=batch_size, generator=seeded_generator(seed, task_id, RECOVERY_STREAM))
    found = recover_task(model, memory, batches, real_outputs=stream.num_classes, method=method, config=config)
    accuracy = masked_accuracy(model, found.masks, data, num_classes=stream.num_classes)
    bit_errors = gg_accuracy = bit_errors_per_step = None
    if true_masks is not None:
        truth = layout.flatten({k: v.float() for k, v in true_masks[task_id].items()}).to(found.state.device)
        true_state = truth * 2 - 1
        bit_errors = int((found.state != true_state).sum())
        bit_errors_per_step = [int((s.float() != true_state).sum()) for s in found.result.trace.states]
        gg_accuracy = masked_accuracy(model, true_masks[task_id], data, num_classes=stream.num_classes)
    return TaskReport(task_id=task_id, bit_errors=bit_errors, bits=layout.dim, accuracy=accuracy,
                      gg_accuracy=gg_accuracy, steps=found.steps, attempts=found.attempts, seconds=found.seconds,
                      entropy_per_step=found.result.trace.entropy, energy_per_step=found.result.trace.energy,
                      bit_errors_per_step=bit_errors_per_step)
