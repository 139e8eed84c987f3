"""HopSupSup: write a run's task masks into a Hopfield memory, and recover them from unlabelled data.

After training, :func:`encode_run` stores every task's masks (all masked layers, flattened by a
:class:`~hopfield_masks.MaskLayout`) as ±1 patterns in one memory. At inference :func:`recover_task`
needs only the fixed weights and that memory: it descends on real scores with the output entropy of
unlabelled test batches (no task id, no labels) and the memory's energy. True masks, when given, are
used only to score the result.
"""
from __future__ import annotations

import itertools
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple

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
from hopfield_masks.implicit import PackedMemory
from hopfield_masks.recovery import (
    RecoveryConfig,
    RecoveryResult,
    SteerConfig,
    anneal,
    steer,
)
from supsup_core.checks import check_choice, check_int, check_output_size
from supsup_core.data.streams import TaskData
from supsup_core.infer.objectives import entropy as output_entropy
from supsup_core.nn import modes
from supsup_core.train.runs import RunDirectory
from supsup_core.train.training import accuracy

__all__ = [
    "RECOVERY_METHODS",
    "TaskRecovery",
    "mask_layout",
    "encode_run",
    "check_store_matches",
    "check_store_of_run",
    "check_store_path",
    "recovery_batches",
    "recover_task",
    "masked_accuracy",
]

RECOVERY_METHODS = ("steered", "reference")
"""``steered`` (recommended, with the pseudo-inverse rule): the memory-projected descent + recall;
``reference``: the paper's annealed descent."""


class TaskRecovery(NamedTuple):
    """One recovered task.

    state : Tensor (d,), the recovered ±1 pattern over the layout
    masks : dict of layer name to {0,1} float Tensor, the recovered masks
    steps : int, descent steps taken (over all attempts)
    seconds : float, wall time of the recovery
    result : RecoveryResult, with the per-step trace (of the last attempt)
    attempts : int, descents run: 1, plus the steered method's retries out of spurious states
    """

    state: torch.Tensor
    masks: dict[str, torch.Tensor]
    steps: int
    seconds: float
    result: RecoveryResult
    attempts: int = 1


def mask_layout(model: nn.Module) -> MaskLayout:
    """The layout (names and mask shapes) of the model's masked layers."""
    layers = modes.masked_layers(model)
    if not layers:
        raise ValueError("this model has no masked layers, so there is nothing to encode")
    return MaskLayout(tuple(layers), tuple(layer.mask_shape for layer in layers.values()))


def _check_maskable(run: RunDirectory, model: nn.Module) -> None:
    per_task = [name for name, m in model.named_modules() if m is not model and hasattr(m, "task_state")]
    if per_task:
        raise ValueError(
            f"the run's model keeps per-task statistics in {per_task}, which a mask memory cannot hold; "
            "HopSupSup needs a model whose tasks differ by masks alone (e.g. --model bnnet)."
        )


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
    HopfieldMemory holding one pattern per task ``0..K-1``, with the model's layout

    Raises
    ------
    ValueError
        No masks; a task's mask file missing (the others would be renumbered); the memory too large.
    """
    tasks = run.saved_tasks()
    if not tasks:
        raise ValueError(
            f"run {run.path} has no task masks to encode (no files in {run.path / 'masks'}); "
            "train it first, or the masks were already deleted after an earlier encode."
        )
    expected = max(run.finished_tasks(), tasks[-1] + 1)
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
    model = run.load_model("cpu", num_tasks=0)
    _check_maskable(run, model)
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
    patterns = torch.stack([masks_to_patterns(layout.flatten(run.read_task(t).masks).float()) for t in tasks])
    memory.store(patterns)
    return memory


RUN_FILES = ("config.json", "weights.safetensors", "results.json", "masks", "scores")
"""Names at the top of a run directory that the run itself uses (hidden names, e.g. locks and temp files, too)."""


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
        if not inside or inside[0] in RUN_FILES or any(part.startswith(".") for part in inside):
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


def recovery_batches(data: TaskData, *, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of the images of ``data`` (labels are dropped: recovery never sees them)."""
    check_int(batch_size, "batch_size", minimum=1, fix="Give the number of unlabelled images per step, e.g. 64.")
    n = len(data.x)
    if n == 0:
        raise ValueError("data holds no images, so there is nothing to recover from; pass the task's test set.")
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=generator).to(data.x.device)
        for lo in range(0, n - batch_size + 1, batch_size):
            yield data.x.index_select(0, order[lo: lo + batch_size])


def _entropy_of(model: nn.Module, layout: MaskLayout, real_outputs: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def entropy(state: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        # ±1 (or soft [-1, 1]) state -> {0,1} (or [0,1]) masks per layer
        modes.set_masks(model, layout.unflatten((state + 1.0) / 2.0))
        logits = model(images)
        check_output_size(logits.shape[-1], real_outputs)
        return output_entropy(logits, real_outputs)

    return entropy


def recover_task(model: nn.Module, memory: HopfieldMemory, batches: Iterator[torch.Tensor], *, real_outputs: int,
                 method: str = "steered", config: RecoveryConfig | SteerConfig | None = None) -> TaskRecovery:
    """Recover one task's masks from unlabelled batches and the memory alone.

    Parameters
    ----------
    model : nn.Module
        The run's model with its fixed weights (its own masks, if any, are not used).
    memory : HopfieldMemory
        The store encoded from the run.
    batches : iterator of Tensor (B, *input_shape)
        Unlabelled images of the task to recover.
    real_outputs : int
        Number of class outputs the entropy is taken over.
    method : {"steered", "reference"}
        "steered" (the default, made for the pseudo-inverse rule) or the paper's annealed "reference" descent.
    config : RecoveryConfig (reference) or SteerConfig (steered), optional
        With a memory that keeps its patterns (implicit backends), the steered method retries when the
        recall ends on no stored pattern, ``config.retries`` times at most (see ``SteerConfig.retry``).

    Returns
    -------
    TaskRecovery
    """
    check_choice(method, "method", RECOVERY_METHODS)
    check_int(real_outputs, "real_outputs", minimum=1, fix="Give the number of classes per task, e.g. 10.")
    layout = check_store_matches(memory, model)
    entropy = _entropy_of(model, layout, real_outputs)
    init = memory.mean_pattern.detach().float()
    batches = iter(batches)  # a list works too, and retries continue where the last descent stopped
    start = time.perf_counter()
    model.eval()
    attempts = 1
    if method == "reference":
        config = config if config is not None else RecoveryConfig()
        if not isinstance(config, RecoveryConfig):
            raise TypeError(f"method 'reference' takes a RecoveryConfig; got {type(config).__name__}.")
        result = anneal(entropy=entropy, energy=memory.energy, init=init, batches=batches, config=config)
        steps = result.steps
    else:
        config = config if config is not None else SteerConfig()
        if not isinstance(config, SteerConfig):
            raise TypeError(f"method 'steered' takes a SteerConfig; got {type(config).__name__}.")
        zero = torch.zeros(memory.dim, device=memory.device, dtype=memory.dtype)
        offset = memory.field(zero).detach()  # −θ: the field of 0, so Ψg = field(g) − field(0)

        def project(grad: torch.Tensor) -> torch.Tensor:
            return memory.field(grad.to(memory.dtype)) - offset

        def recall(state: torch.Tensor) -> torch.Tensor:
            return memory.recall(state, mode="sync", max_steps=config.recall_steps).states[0]

        result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                       batches=batches, config=config)
        steps = result.steps
        # Ended on no stored pattern (a spurious mixture): descend again with more data per step. Only a
        # memory that keeps its patterns can tell; landing on another task's pattern cannot be told apart.
        while isinstance(memory, PackedMemory) and attempts <= config.retries and int(memory.find_stored(result.state)) < 0:
            retry_config, merge = config.retry(attempts)
            merged = _merged(batches, merge)
            first = next(merged, None)
            if first is None:  # a finite iterator ran out: keep what the last attempt found
                break
            result = steer(entropy=entropy, project=project, recall=recall, energy=memory.energy, init=init,
                           batches=itertools.chain([first], merged), config=retry_config)
            steps += result.steps
            attempts += 1
    seconds = time.perf_counter() - start
    state = result.state.detach()
    masks = {name: m.detach() for name, m in layout.unflatten((state + 1.0) / 2.0).items()}
    return TaskRecovery(state, masks, steps, seconds, result, attempts)


def _merged(batches: Iterator[torch.Tensor], count: int) -> Iterator[torch.Tensor]:
    """Batches of ``count`` consecutive batches each, concatenated (the last one shorter if they run out)."""
    while group := list(itertools.islice(batches, count)):
        yield torch.cat(group)


def masked_accuracy(model: nn.Module, masks: Mapping[str, torch.Tensor], data: TaskData, *, num_classes: int,
                    batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` with the given layer ``masks`` (argmax over the first ``num_classes`` outputs)."""
    modes.set_masks(model, {name: m.float() for name, m in masks.items()})
    return accuracy(model, data, num_classes=num_classes, batch_size=batch_size)
