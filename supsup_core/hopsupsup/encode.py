"""Encode a run's task masks into one Hopfield memory, and check that a store fits the run it is used with.

After training, :func:`encode_run` stores every task's masks (all masked layers, flattened by the model's
:class:`~hopfield_masks.MaskLayout`) as ±1 patterns, one per task, in task order. The store records the
run's identity, so :func:`check_store_of_run` can refuse a store encoded from another run, and
:func:`check_store_matches` one encoded for other masked layers.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hopfield_masks import (
    HopfieldMemory,
    MaskLayout,
    estimate_nbytes,
    make_memory,
    masks_to_patterns,
)
from hopfield_masks.factory import DEFAULT_MAX_BYTES
from hopfield_masks.files import check_store_target
from supsup_core.nn import modes
from supsup_core.train.runs import RUN_ENTRIES, RunDirectory

__all__ = [
    "mask_layout",
    "packed_mask_nbytes",
    "encode_run",
    "check_store_path",
    "check_store_of_run",
    "check_store_matches",
]



def mask_layout(model: nn.Module) -> MaskLayout:
    """The layout (names and mask shapes) of the model's masked layers, in the order patterns flatten them.

    Raises
    ------
    ValueError
        The model has no masked layers.
    """
    layers = modes.masked_layers(model)
    if not layers:
        raise ValueError("this model has no masked layers, so there is nothing to encode; "
                         "build it with masked layers (every model of supsup_core.nn.models has them).")
    return MaskLayout(tuple(layers), tuple(layer.mask_shape for layer in layers.values()))


def packed_mask_nbytes(count: int, dim: int) -> int:
    """Bytes of ``count`` masks of ``dim`` bits packed 8 to a byte: what a store is compared against."""
    return count * ((dim + 7) // 8)


def _check_maskable(model: nn.Module) -> None:
    per_task = list(modes.other_task_modules(model))
    if per_task:
        raise ValueError(
            f"the run's model keeps per-task statistics in {per_task}, which a mask memory cannot hold; "
            "HopSupSup needs a model whose tasks differ by masks alone (e.g. --model bnnet)."
        )


def _tasks_to_encode(run: RunDirectory, num_tasks: int | None) -> list[int]:
    """Task ids ``0..K-1`` whose masks will be stored; refuses gaps, which would renumber the tasks."""
    tasks = run.saved_tasks()
    if not tasks:
        raise ValueError(
            f"run {run.path} has no task masks to encode (no files in {run.path / 'masks'}); "
            "train it first, or the masks were already deleted after an earlier encode."
        )
    expected = max(max(run.finished_tasks(), default=-1), tasks[-1]) + 1
    missing = sorted(set(range(expected)) - set(tasks))
    if missing:
        files = ", ".join(str(run.mask_path(t)) for t in missing)
        raise ValueError(
            f"run {run.path} lacks the mask file(s) of task(s) {missing} ({files}); encoding the other tasks would "
            "renumber them, and recovery would score the wrong task. Delete nothing; rerun `supsup train` with the "
            "run's options to retrain the missing task(s), then encode again."
        )
    if num_tasks is not None:
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or not 1 <= num_tasks <= len(tasks):
            raise ValueError(f"num_tasks must be between 1 and the {len(tasks)} saved task(s); got {num_tasks!r}.")
        tasks = tasks[:num_tasks]
    return tasks


def encode_run(run: RunDirectory, *, rule: str = "pseudoinverse", backend: str = "auto",
               device: torch.device | str = "cpu", num_tasks: int | None = None,
               max_bytes: int | None = DEFAULT_MAX_BYTES, **rule_options: Any) -> HopfieldMemory:
    """Store the saved tasks' masks of ``run`` in a new memory (one pattern per task, in task order).

    The memory records the run's identity (``run.weights_digest()``), so recovery can refuse a store
    encoded from another run.

    Parameters
    ----------
    run : RunDirectory
    rule : str
        A key of ``hopfield_masks.RULES`` (default: the pseudo-inverse, which the steered recovery is made for).
    backend : {"auto", "dense", "implicit"}
        "auto": dense while the d×d matrix is small, else implicit (see ``hopfield_masks.default_backend``).
    device : torch.device or str
    num_tasks : int, optional
        Store only tasks ``0..num_tasks-1`` (default: every saved task).
    max_bytes : int or None
        Refuse, before allocating anything of size d², a memory that needs more (default 2 GiB; None: no bound).
    **rule_options
        Passed to the rule (e.g. ``zero_diagonal`` for the pseudo-inverse).

    Returns
    -------
    HopfieldMemory holding one pattern of shape (d,) per task ``0..K-1``, with the model's layout

    Raises
    ------
    ValueError
        No masks; a task's mask file missing (the others would be renumbered); a model with per-task
        modules besides its masks; the memory too large.
    """
    run.require_masks("a Hopfield memory of masks (HopSupSup)")
    tasks = _tasks_to_encode(run, num_tasks)
    model = run.load_model("cpu", num_tasks=0)
    _check_maskable(model)
    layout = mask_layout(model)
    # sized and bounded before any pattern is read: a refused memory costs nothing
    memory = make_memory(rule, layout.dim, backend, layout=layout, device=device, max_bytes=max_bytes,
                         run_digest=run.weights_digest(), **rule_options)
    pattern_bytes = len(tasks) * layout.dim * 4  # the (K, d) float32 patterns handed to store()
    needed = pattern_bytes + estimate_nbytes(rule, layout.dim, memory.backend, count=len(tasks), **rule_options)
    if max_bytes is not None and needed > max_bytes:
        raise ValueError(
            f"encoding {len(tasks)} task(s) of d = {layout.dim:,} mask bits needs {needed:,} bytes "
            f"({pattern_bytes:,} for the float patterns, the rest for the {memory.backend} memory), over the limit of "
            f"{max_bytes:,} bytes (max_bytes, `--max-memory`). Raise --max-memory if the machine has the memory, "
            "or encode fewer tasks (num_tasks).")
    # (K, d) ±1 patterns, one row per task
    patterns = torch.stack([masks_to_patterns(layout.flatten(run.read_task(t).masks).float()) for t in tasks])
    memory.store(patterns)
    return memory


def check_store_path(run: RunDirectory, path: str | os.PathLike) -> Path:
    """Return ``path`` if a store encoded from ``run`` may be written there; else ``ValueError``.

    Inside the run only paths the run does not use are allowed (never ``config.json``,
    ``weights.safetensors``, ``results.json``, anything in ``masks/`` or ``scores/``, or a hidden name);
    anywhere, an existing file is replaced only if it is a store (see ``hopfield_masks.files.check_store_target``).
    """
    path = Path(path)
    target = path.expanduser().resolve()
    root = run.path.expanduser().resolve()
    if target == root or target.is_relative_to(root):
        inside = target.relative_to(root).parts if target != root else ()
        if not inside or inside[0] in RUN_ENTRIES or any(part.startswith(".") for part in inside):
            raise ValueError(
                f"{path} is inside the run {run.path} at a path the run uses or may use; writing the store there would "
                f"overwrite the run. Write it outside the run (e.g. {run.path.name}.store beside it), or under a new "
                "name inside it (e.g. RUN/hopfield.store)."
            )
    check_store_target(path)
    return path


def check_store_of_run(memory: HopfieldMemory, run: RunDirectory, *, force: bool = False) -> None:
    """Check that ``memory`` was encoded from ``run`` (same weights file), where the store records that.

    A mismatch raises ``ValueError`` unless ``force`` (then it warns). A store with no recorded identity
    (older files, or memories built without a run) is accepted with a warning.
    """
    if memory.run_digest is None:
        warnings.warn("the store records no run identity (an older store, or one made without a run), so it cannot be "
                      f"checked against {run.path}; re-encode it with `supsup encode` to record it.", UserWarning,
                      stacklevel=2)
        return
    digest = run.weights_digest()
    if memory.run_digest != digest:
        message = (f"the store was encoded from a run whose weights have SHA-256 {memory.run_digest[:16]}…, but "
                   f"{run.path} has {digest[:16]}…: another run (another seed?), whose masks do not fit these weights")
        if not force:
            raise ValueError(f"{message}. Use the store encoded from this run (`supsup encode {run.path}`), or pass "
                             "force=True (`--force`) to recover anyway.")
        warnings.warn(f"{message}; recovering anyway (forced).", UserWarning, stacklevel=2)


def check_store_matches(memory: HopfieldMemory, model: nn.Module) -> MaskLayout:
    """Return the model's layout if ``memory`` was encoded with it; else a ``ValueError`` naming the mismatch."""
    layout = mask_layout(model)
    if memory.layout is None:
        raise ValueError("the store has no layout; re-encode the run with `supsup encode` so it records the masked layers.")
    if memory.layout != layout:
        raise ValueError(
            f"the store was encoded for masked layers {memory.layout.to_dict()}, but this run's model has "
            f"{layout.to_dict()}; use the store encoded from this run (`supsup encode RUN`)."
        )
    if memory.count == 0:
        raise ValueError("the store holds no patterns; encode a run with trained tasks first")
    return layout
