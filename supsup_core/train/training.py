"""Train one task's supermask scores over the fixed weights, and measure a task's test accuracy."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from hopfield_masks.seeding import seeded_generator
from supsup_core.checks import check_choice, check_finite, check_int, check_positive
from supsup_core.data.streams import TaskData, TaskStream
from supsup_core.nn import fused, modes
from supsup_core.nn.fused import MaskSink

__all__ = ["DEFAULT_ITERATIONS", "TrainConfig", "TrainResult", "OPTIMIZERS", "make_optimizer", "make_shared_optimizer", "optimizer_implementation", "uses_fused_rmsprop", "task_generator", "train_task", "evaluate_task", "evaluate_tasks"]


DEFAULT_ITERATIONS = 1000
"""Batches per task when a :class:`TrainConfig` names neither iterations nor epochs."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train one task's scores: for ``iterations`` batches or ``epochs`` passes (not both).

    Parameters
    ----------
    iterations : int, optional
        Number of batches per task (:data:`DEFAULT_ITERATIONS` when neither it nor ``epochs`` is given).
    epochs : float, optional
        Passes over the task's training set (rounded up to whole batches).
    batch_size : int
    optimizer : {"sgd", "adam", "rmsprop"}
        A key of :data:`OPTIMIZERS`.
    lr : float
    momentum : float, optional
        SGD and RMSprop momentum; default 0.9 for SGD and 0 for RMSprop. Adam takes none.
    weight_decay : float
    eval_batch_size : int
        Test batch size (BatchNorm-masked models normalise with the batch's statistics).
    shared_lr : float, optional
        Learning rate of the weights a method shares between tasks, where it trains them (PSP,
        fine-tuning, BatchEnsemble's first task); default ``lr``. SupSup's weights are fixed.
    """

    iterations: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    optimizer: str = "rmsprop"
    lr: float = 1e-4
    momentum: float | None = None
    weight_decay: float = 0.0
    eval_batch_size: int = 1000
    shared_lr: float | None = None

    def __post_init__(self) -> None:
        if self.iterations is not None and self.epochs is not None:
            raise ValueError(
                f"give at most one of iterations and epochs; got iterations={self.iterations}, epochs={self.epochs}. "
                "Drop one of --iterations/--epochs."
            )
        if self.iterations is None and self.epochs is None:
            object.__setattr__(self, "iterations", DEFAULT_ITERATIONS)
        if self.iterations is not None:
            check_int(self.iterations, "iterations", minimum=1, fix="Give a whole number of batches, e.g. --iterations 1000.")
        if self.epochs is not None:
            check_positive(self.epochs, "epochs", "Give a finite number of passes, e.g. --epochs 1.")
        check_int(self.batch_size, "batch_size", minimum=1, fix="Give a whole number of samples, e.g. --batch-size 128.")
        check_int(self.eval_batch_size, "eval_batch_size", minimum=1, fix="Give a whole number of samples, e.g. 1000.")
        check_positive(self.lr, "lr", "Give a finite learning rate, e.g. --lr 1e-4.")
        if self.shared_lr is not None:
            check_positive(self.shared_lr, "shared_lr", "Give a finite learning rate, e.g. --shared-lr 1e-4, or leave it out for --lr.")
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        if self.optimizer == "adam" and self.momentum is not None:
            raise ValueError(f"adam takes no momentum; got momentum={self.momentum}. Leave --momentum out or use sgd/rmsprop.")
        if self.momentum is not None:
            check_finite(self.momentum, "momentum", "Give a momentum in [0, 1), e.g. --momentum 0.9.")
            if not 0 <= self.momentum < 1:
                raise ValueError(f"momentum must lie in [0, 1); got {self.momentum!r}. Give e.g. --momentum 0.9, or leave it out.")
        check_finite(self.weight_decay, "weight_decay", "Give a finite weight decay, e.g. --weight-decay 1e-4, or 0.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}. Give e.g. --weight-decay 1e-4, or 0.")

    def num_batches(self, num_train: int) -> int:
        """Batches per task for a task with ``num_train`` training samples."""
        if num_train < 1:
            raise ValueError(f"a task needs training samples; got num_train={num_train}. Check that the data holds every task's classes.")
        if self.iterations is not None:
            return int(self.iterations)
        return max(1, math.ceil(self.epochs * num_train / min(self.batch_size, num_train)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        return cls(**dict(data))


MaskSinks = Mapping[torch.Tensor, MaskSink]  # a trained tensor -> where a fused step may write its masked weight


def _fusable(params: list[nn.Parameter]) -> bool:
    """Whether torch's fused SGD/Adam take ``params``: real floating tensors only (PSP's complex weights are not).
    fused=True on CPU tensors needs torch >= 2.4 (the pyproject's lower bound); older releases have CUDA kernels only."""
    return all(p.is_floating_point() for p in params)


def _sgd(params: list[nn.Parameter], c: TrainConfig, masks: MaskSinks | None = None) -> torch.optim.Optimizer:
    momentum = 0.9 if c.momentum is None else c.momentum
    return torch.optim.SGD(params, lr=c.lr, momentum=momentum, weight_decay=c.weight_decay, fused=_fusable(params))


def _adam(params: list[nn.Parameter], c: TrainConfig, masks: MaskSinks | None = None) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=_fusable(params))


def uses_fused_rmsprop(config: TrainConfig, device: torch.device | str) -> bool:
    """Whether training with ``config`` on ``device`` runs :class:`supsup_core.nn.fused.FusedRMSprop`."""
    return config.optimizer == "rmsprop" and torch.device(device).type == "cpu" and fused.kernels_available()


def _rmsprop(params: list[nn.Parameter], c: TrainConfig, masks: MaskSinks | None = None) -> torch.optim.Optimizer:
    momentum = 0.0 if c.momentum is None else c.momentum
    if all(uses_fused_rmsprop(c, p.device) for p in params):
        # one pass per tensor, and the next forward's masked weights come with it (see supsup_core.nn.fused)
        return fused.FusedRMSprop(params, lr=c.lr, momentum=momentum, weight_decay=c.weight_decay, masks=masks)
    return torch.optim.RMSprop(params, lr=c.lr, momentum=momentum, weight_decay=c.weight_decay, foreach=True)


# name -> builder(params, config, masks=None); torch's fused SGD and Adam, and our fused RMSprop on the CPU
# (torch has none; the multi-tensor one elsewhere). ``masks`` are the layers' MaskSinks, which only the
# fused RMSprop uses.
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": _sgd,
    "adam": _adam,
    "rmsprop": _rmsprop,
}


def make_optimizer(model: nn.Module, task_id: int, config: TrainConfig,
                   params: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """The optimizer ``config`` names, over ``params`` (default: what every task module trains for ``task_id``)."""
    params = modes.task_parameters(model, task_id) if params is None else list(params)
    if not params:
        raise ValueError(f"task {task_id} of this model has nothing to train: it is frozen (only its mask is kept), or no "
                         "task module holds trainable state for it; build the model with supsup_core.nn.models.build_model "
                         "and add the task first")
    sinks = {layer.task_scores(task_id): sink for layer in modes.masked_layers(model).values()
             if (sink := layer.mask_sink(task_id)) is not None}
    return OPTIMIZERS[config.optimizer](params, config, {p: sinks[p] for p in params if p in sinks})


def make_shared_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer | None:
    """The optimizer ``config`` names over the weights a method shares between tasks, at ``config.shared_lr``
    (default ``config.lr``); None when there are none. A run keeps it from task to task."""
    params = list(params)
    if not params:
        return None
    lr = config.lr if config.shared_lr is None else config.shared_lr
    return OPTIMIZERS[config.optimizer](params, dataclasses.replace(config, lr=lr))


def optimizer_implementation(optimizer: torch.optim.Optimizer) -> str:
    """Which implementation ``optimizer`` is: "fused-cpu-rmsprop", "torch-rmsprop", "torch-sgd" or "torch-adam".

    Runs record it, since the fused CPU kernel and torch's RMSprop agree only up to float rounding.
    """
    if isinstance(optimizer, fused.FusedRMSprop) and fused.kernels_available():
        return "fused-cpu-rmsprop"
    if isinstance(optimizer, fused.FusedRMSprop):
        return "torch-rmsprop"  # without a kernel every tensor takes torch's single-tensor RMSprop
    return f"torch-{type(optimizer).__name__.lower()}"


def clear_fresh_masked_weights(model: nn.Module) -> None:
    """Drop the masked weights a fused optimizer left in ``model``'s layers (call when training stops)."""
    for layer in modes.masked_layers(model).values():
        layer.clear_fresh_masked_weight()


class TrainResult(NamedTuple):
    """What training one task did: ``iterations`` batches, the mean loss of the last 10% of them, seconds taken,
    and which optimizer implementation ran (see :func:`optimizer_implementation`)."""

    task_id: int
    iterations: int
    final_loss: float
    seconds: float
    optimizer: str


def task_generator(seed: int, task_id: int) -> torch.Generator:
    """A CPU generator for task ``task_id`` of a run seeded ``seed`` (score init and batch order).

    Each task gets its own stream, so resuming a run after task ``t`` reproduces task ``t + 1`` exactly.
    """
    return seeded_generator(seed, task_id)


def train_task(
    model: nn.Module,
    task_id: int,
    stream: TaskStream,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    progress: bool = False,
    params: list[nn.Parameter] | None = None,
    shared_optimizer: torch.optim.Optimizer | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train the state of ``task_id`` (and, with ``shared_optimizer``, the weights it holds; every other task's
    state stays untouched).

    Parameters
    ----------
    model : nn.Module
        A model from :func:`supsup_core.nn.models.build_model` that holds trainable scores for ``task_id``.
    task_id : int
        The model's task whose scores are trained on the stream's task of the same id.
    stream : TaskStream
    config : TrainConfig
    generator : torch.Generator
        CPU generator for the batch order (see :func:`task_generator`).
    progress : bool
        Show a tqdm bar.
    params : list of Parameter, optional
        What to train (a method's :meth:`~supsup_core.nn.method.Method.task_parameters`); default: every
        task module's trainable state for ``task_id`` (the scores of its masks). May be empty when
        ``shared_optimizer`` trains something.
    shared_optimizer : torch.optim.Optimizer, optional
        Also stepped after every batch: the optimizer a run keeps over the weights its method shares
        between tasks (:func:`make_shared_optimizer`).
    on_batch : callable(batch_index), optional
        Called after each step (e.g. to record an earlier task's accuracy as training goes on); the model's
        task and training mode are restored after it.
    """
    params = modes.task_parameters(model, task_id) if params is None else list(params)
    if shared_optimizer is not None:
        shared = {id(p) for group in shared_optimizer.param_groups for p in group["params"]}
        if any(id(p) in shared for p in params):
            raise ValueError("params and shared_optimizer hold the same tensor, which would be stepped twice per batch; "
                             "a method's task_parameters must leave out its shared_parameters.")
    if not params and shared_optimizer is not None:
        optimizer = None  # only shared weights train (one network fine-tuned, PSP)
    else:
        optimizer = make_optimizer(model, task_id, config, params)
    optimizers = [o for o in (optimizer, shared_optimizer) if o is not None]
    modes.set_task(model, task_id)
    model.train()
    num_train = stream.num_train(task_id)
    if num_train == 0:
        raise ValueError(f"task {task_id} of {stream.name} has no training samples, so there is nothing to train on; "
                         "check that the data's train split holds every task's classes.")
    num_batches = config.num_batches(num_train)
    tail = max(1, num_batches // 10)
    tail_loss = torch.zeros((), device=stream.device)  # summed on the device: no sync per step
    start = time.perf_counter()
    batches = stream.train_batches(task_id, batch_size=config.batch_size, num_batches=num_batches, generator=generator)
    bar = tqdm(batches, total=num_batches, desc=f"task {task_id}", disable=not progress, leave=False)
    try:
        for i, (x, y) in enumerate(bar):
            loss = F.cross_entropy(model(x), y)
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in optimizers:
                o.step()
            if i >= num_batches - tail:
                tail_loss += loss.detach()
            if progress and i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if on_batch is not None:
                on_batch(i)
                modes.set_task(model, task_id)
                model.train()
    finally:
        clear_fresh_masked_weights(model)
    return TrainResult(int(task_id), num_batches, float(tail_loss) / tail, time.perf_counter() - start,
                       "+".join(optimizer_implementation(o) for o in optimizers))


@torch.no_grad()
def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int, batch_size: int = 1000) -> torch.Tensor:
    """Per-sample correctness, bool of shape (N,), of ``model`` in whatever mask mode it is in now.

    The prediction is the argmax over the first ``num_classes`` outputs (extra "superfluous" outputs are
    never predicted).
    """
    model.eval()
    hits = [model(x[lo: lo + batch_size])[:, :num_classes].argmax(1) == y[lo: lo + batch_size]
            for lo in range(0, len(y), batch_size)]
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool, device=y.device)


def accuracy(model: nn.Module, data: TaskData, *, num_classes: int, batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` in whatever mask mode it is in now, on ``data`` (see :func:`correct`)."""
    hits = correct(model, data.x, data.y, num_classes=num_classes, batch_size=batch_size)
    return float(hits.sum()) / max(1, len(hits))


def evaluate_task(model: nn.Module, task_id: int, stream: TaskStream, *, batch_size: int = 1000) -> float:
    """Test accuracy of ``model`` with task ``task_id``'s mask on that task's test set (GG scenario)."""
    modes.set_task(model, task_id)
    data = stream.test_set(task_id)
    if not len(data.y):  # an accuracy of 0.0 would read as a result
        raise ValueError(f"task {task_id} of {stream.name} has no test samples to evaluate; check that the data's test "
                         "split holds every task's classes.")
    return accuracy(model, data, num_classes=stream.num_classes, batch_size=batch_size)


def evaluate_tasks(model: nn.Module, stream: TaskStream, task_ids: Iterable[int], *, batch_size: int = 1000) -> list[float]:
    """:func:`evaluate_task` for each of ``task_ids``, in order."""
    return [evaluate_task(model, t, stream, batch_size=batch_size) for t in task_ids]
