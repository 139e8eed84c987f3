"""NN scenario: train without task ids at all, allocating a new mask when the data looks new.

The learner sees one stream of batches (tasks one after another, boundaries unannounced). Every
``check_every`` batches it superposes ``n = max(K, min_masks)`` masks (the K allocated so far plus fresh,
untrained ones), computes ``ν = softmax(−∂H/∂α)`` with H the output entropy, and

- if ``max ν < (1 + ε) / n`` no mask stands out: the data is new, so it allocates mask K and trains it;
- otherwise it trains the learned mask with the largest ν (never an unlearned one).

Between checks it keeps training the chosen mask. SupSup's reference uses ``check_every = 100``,
``min_masks = 5`` and ``ε = 2⁻³``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from hopfield_masks.seeding import seeded_generator
from supsup_core.checks import check_int, check_positive
from supsup_core.data.streams import TaskStream, build_stream
from supsup_core.infer.gn_evaluation import GNConfig, evaluate_gn
from supsup_core.infer.inference import alpha_gradient
from supsup_core.infer.nn_results import NNCheck, NNRunResults
from supsup_core.infer.objectives import Objective
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn import modes
from supsup_core.train.continual import check_compatible
from supsup_core.train.runs import RunDirectory
from supsup_core.train.training import (
    TrainConfig,
    clear_fresh_masked_weights,
    make_optimizer,
    task_generator,
)

__all__ = ["NNConfig", "NNResult", "default_nn_evaluation", "novelty", "train_nn", "train_nn_run"]

# Mask k's scores are drawn from seeded_generator(seed, _MASK_SEED_OFFSET + k): streams of their own, apart
# from the batch orders of the stream's tasks (keys 0..num_tasks-1, as task_generator).
_MASK_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class NNConfig:
    """How to train without task ids.

    Parameters
    ----------
    train : TrainConfig
        Batches per task of the stream, batch size, optimizer (each mask gets its own optimizer).
    check_every : int
        Batches between two novelty checks (the first batch is always a check).
    epsilon : float
        New data when ``max ν < (1 + epsilon) / n``.
    min_masks : int
        ν is computed over at least this many masks, padding with fresh ones.
    max_masks : int, optional
        Never allocate more masks than this (default: no limit).
    """

    train: TrainConfig
    check_every: int = 100
    epsilon: float = 2.0**-3
    min_masks: int = 5
    max_masks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the train config nested)."""
        out = dataclasses.asdict(self)
        out["train"] = self.train.to_dict()
        return out

    def __post_init__(self) -> None:
        check_int(self.check_every, "check_every", minimum=1, fix="It counts batches; SupSup uses 100.")
        check_positive(self.epsilon, "epsilon", "SupSup uses 2**-3.")
        check_int(self.min_masks, "min_masks", minimum=1, fix="SupSup uses 5.")
        if self.max_masks is not None:
            check_int(self.max_masks, "max_masks", minimum=1, fix="Leave it None for no limit.")


class NNResult(NamedTuple):
    """What NN training did: ``masks_allocated`` against ``true_tasks``; every check in order;
    ``mask_of_task[t]`` the mask trained most on task t's data; seconds taken."""

    masks_allocated: int
    true_tasks: int
    checks: list[NNCheck]
    mask_of_task: list[int]
    seconds: float


def novelty(model: nn.Module, x: Tensor, masks: PackedMasks, objective: Objective) -> Tensor:
    """``ν = softmax(−∂obj/∂α)`` at α uniform over all of ``masks``.

    Parameters
    ----------
    model : nn.Module
    x : Tensor of shape (N, ...)
    masks : PackedMasks
        The masks to superpose (learned and fresh ones).
    objective : Objective

    Returns
    -------
    Tensor of shape (K,), summing to one.
    """
    return torch.softmax(-alpha_gradient(model, x, masks, None, objective).gradient, dim=0)


def train_nn(model: nn.Module, stream: TaskStream, config: NNConfig, *, seed: int = 0, progress: bool = False) -> NNResult:
    """Train ``model`` on every task of ``stream`` in order, never telling it which task a batch is from.

    Parameters
    ----------
    model : nn.Module
        A model from :func:`supsup_core.nn.models.build_model`, holding no task yet; masks are added to it.
    stream : TaskStream
        Its tasks are visited in order, ``config.train.num_batches`` batches each.
    config : NNConfig
    seed : int
        Seeds the batch order (as :func:`supsup_core.train.training.task_generator`) and each fresh mask's
        scores (``hopfield_masks.seeding.seeded_generator(seed, 10_000 + k)`` for mask k).
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    NNResult; the model holds every allocated mask (as trainable scores) plus any fresh padding masks.
    """
    if modes.num_tasks(model) != 0:
        raise ValueError(f"NN training starts from a model with no task; this one holds {modes.num_tasks(model)}. Build a fresh model.")
    objective = Objective("entropy", stream.num_classes)
    optimizers: dict[int, torch.optim.Optimizer] = {}
    checks: list[NNCheck] = []
    learned, current, batch = 0, 0, 0
    trained_on = torch.zeros(stream.num_tasks, 0, dtype=torch.long)  # (tasks, masks) batch counts
    start = time.perf_counter()

    total = sum(config.train.num_batches(stream.num_train(t)) for t in range(stream.num_tasks))
    bar = tqdm(total=total, desc="NN", disable=not progress, leave=False)
    try:
        for task_id in range(stream.num_tasks):
            batches = stream.train_batches(task_id, batch_size=config.train.batch_size,
                                           num_batches=config.train.num_batches(stream.num_train(task_id)),
                                           generator=task_generator(seed, task_id))
            for x, y in batches:
                if batch % config.check_every == 0:
                    current, allocated, max_nu, threshold, n = _check(model, x, learned, config, objective, seed)
                    learned += allocated
                    checks.append(NNCheck(batch, task_id, max_nu, threshold, n, current, allocated))
                if current not in optimizers:
                    optimizers[current] = make_optimizer(model, current, config.train)
                modes.set_task(model, current)
                loss = F.cross_entropy(model(x), y)
                optimizers[current].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[current].step()
                if trained_on.shape[1] <= current:
                    trained_on = F.pad(trained_on, (0, current + 1 - trained_on.shape[1]))
                trained_on[task_id, current] += 1
                batch += 1
                bar.update(1)
    finally:  # an error mid-step must not leave a fused optimizer's stale masked weights in the layers
        bar.close()
        clear_fresh_masked_weights(model)
    mask_of_task = trained_on.argmax(1).tolist()
    return NNResult(learned, stream.num_tasks, checks, mask_of_task, time.perf_counter() - start)


def _ensure_masks(model: nn.Module, count: int, seed: int) -> None:
    """Add fresh masks (scores seeded per mask id) until the model holds ``count``."""
    while modes.num_tasks(model) < count:
        modes.add_task(model, generator=seeded_generator(seed, _MASK_SEED_OFFSET + modes.num_tasks(model)))


def _check(model: nn.Module, x: Tensor, learned: int, config: NNConfig, objective: Objective,
           seed: int) -> tuple[int, bool, float | None, float | None, int]:
    """One novelty check: (mask to train next, whether it is newly allocated, max ν, threshold, masks superposed)."""
    can_allocate = config.max_masks is None or learned < config.max_masks
    if learned == 0:
        _ensure_masks(model, 1, seed)
        return 0, True, None, None, 0  # nothing to superpose yet
    n = max(learned, config.min_masks)
    _ensure_masks(model, n, seed)
    packed = PackedMasks.from_model(model, range(n)).to(x.device)
    nu = novelty(model, x, packed, objective)
    threshold = (1 + config.epsilon) / n
    max_nu = float(nu.max())
    if max_nu < threshold and can_allocate:
        _ensure_masks(model, learned + 1, seed)
        return learned, True, max_nu, threshold, n
    return int(torch.argmax(nu[:learned])), False, max_nu, threshold, n


def train_nn_run(run: RunDirectory, config: NNConfig, *, evaluation: GNConfig | None = None, device: torch.device | str = "cpu",
                 stream: TaskStream | None = None, progress: bool = False) -> NNRunResults:
    """NN training into a new run directory, then evaluation without task ids; returns what results.json records.

    Each allocated mask is written as "task" ``k`` of the run (mask files ``task_k``), so the run can be
    evaluated again with ``supsup evaluate RUN --scenario GNs``. results.json records ``scenario: "NN"``,
    ``masks_allocated`` against ``true_tasks``, ``mask_of_task``, every check, and the GN evaluation
    (``evaluation.scenario``) of every true task's test set with ``mask_of_task`` as the right answer.
    Holds the run's lock throughout (:class:`supsup_core.train.run_lock.RunBusyError` if another process writes it).

    Parameters
    ----------
    run : RunDirectory
        Fresh (no mask file yet): NN runs are not resumable.
    config : NNConfig
        ``config.train`` must equal ``run.config.train`` (``ValueError`` otherwise).
    evaluation : GNConfig, optional
        How to evaluate afterwards. Default: :func:`default_nn_evaluation` of the stream (GNs, one-shot,
        entropy over the stream's classes, 128 images per inference).
    device : torch.device or str
    stream : TaskStream, optional
        Default: built from the run's stream config on ``device``.
    progress : bool

    Returns
    -------
    NNRunResults, as written to results.json.
    """
    if config.train != run.config.train:
        changes = "; ".join(f"{key}: {value!r} -> {getattr(config.train, key)!r}"
                            for key, value in run.config.train.to_dict().items() if getattr(config.train, key) != value)
        raise ValueError(f"config.train differs from the run's train config ({changes}); results.json would record one and "
                         "config.json the other. Build it as NNConfig(train=run.config.train, ...).")
    with run.locked():
        return _train_nn_run(run, config, evaluation, device, stream, progress)


def default_nn_evaluation(stream: TaskStream) -> GNConfig:
    """How an NN run is evaluated unless told otherwise: GNs, one-shot, entropy, the stream's classes.

    GNs because the masks were allocated without task ids: a group classified by a mask other than its
    task's own still counts its predictions (the labels are shared).
    """
    return GNConfig.for_stream(stream, scenario="GNs", inference="oneshot", objective="entropy")


def _train_nn_run(run: RunDirectory, config: NNConfig, evaluation: GNConfig | None, device: torch.device | str,
                  stream: TaskStream | None, progress: bool) -> NNRunResults:
    if run.saved_tasks() or run.results_path.exists():
        raise ValueError(f"{run.path} already holds masks or results; NN runs are not resumable. Choose a new --out directory.")
    if run.config.method != "supsup":  # the novelty check superposes supermasks: it is SupSup's own scenario
        raise ValueError(f"the NN scenario allocates SupSup supermasks, but the run's method is {run.config.method!r}; "
                         "train it with --method supsup, or task by task (--scenario GG).")
    stream = stream if stream is not None else build_stream(run.config.stream, device)
    check_compatible(run, stream)
    evaluation = evaluation if evaluation is not None else default_nn_evaluation(stream)
    model = run.load_model(device, num_tasks=0)
    result = train_nn(model, stream, config, seed=run.config.seed, progress=progress)
    # Mark the run as NN before any mask file exists: a crash below must not let `supsup train` (GG)
    # resume it and adopt NN masks as task ids, nor `evaluate --scenario GG` read them as such.
    record = NNRunResults(dataset=run.config.stream.dataset, model=run.config.model.name, data_note=stream.note,
                       true_tasks=result.true_tasks, evaluation=dataclasses.asdict(evaluation), nn_config=config.to_dict())
    run.write_results(record)
    for mask_id in range(result.masks_allocated):
        run.write_task(model, mask_id)
    masks = PackedMasks.from_model(model, range(result.masks_allocated)).to(device)
    tasks = [stream.test_set(t) for t in range(stream.num_tasks)]
    gn = evaluate_gn(model, masks, tasks, evaluation, mask_of_task=result.mask_of_task, progress=progress)
    record = dataclasses.replace(
        record, finished=True, masks_allocated=result.masks_allocated, mask_of_task=result.mask_of_task,
        per_task_accuracy=gn.per_task_accuracy, average_accuracy=gn.average_accuracy,
        task_inference_accuracy=gn.task_inference_accuracy, own_mask_per_task_accuracy=gn.own_mask_per_task_accuracy,
        own_mask_average_accuracy=gn.own_mask_average_accuracy, seconds=result.seconds, checks=list(result.checks),
        mask_bytes_per_task=[run.mask_bytes(k) for k in range(result.masks_allocated)],
    )
    run.write_results(record)
    return record
