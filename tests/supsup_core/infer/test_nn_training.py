"""Tests of NN training: novelty checks, mask allocation rules and their bookkeeping."""
import dataclasses

import pytest
import torch

from hopfield_masks.seeding import seeded_generator
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.infer import nn_training
from supsup_core.infer.gn_evaluation import GNConfig
from supsup_core.infer.nn_results import NNRunResults
from supsup_core.infer.nn_training import (
    NNConfig,
    default_nn_evaluation,
    novelty,
    train_nn,
    train_nn_run,
)
from supsup_core.infer.objectives import Objective
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig


@pytest.fixture(scope="module")
def stream():
    return build_stream(StreamConfig(dataset="permuted-mnist", num_tasks=2))  # scikit-learn's 8x8 digits


def _model(stream, num_tasks: int = 0):
    config = ModelConfig(name="lenet", input_shape=stream.input_shape, output_size=10, num_tasks=num_tasks, width=24)
    return build_model(config, torch.Generator().manual_seed(0))


def _config(**kw):
    kw.setdefault("check_every", 4)
    return NNConfig(train=TrainConfig(iterations=8, batch_size=32, lr=1e-3), **kw)


def test_novelty_is_a_distribution_over_the_superposed_masks(stream):
    model = _model(stream, num_tasks=5)
    nu = novelty(model, stream.test_set(0).x[:16], PackedMasks.from_model(model), Objective("entropy", 10))
    assert nu.shape == (5,)
    assert nu.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_checks_follow_the_allocation_rule(stream):
    result = train_nn(_model(stream), stream, _config())
    assert [c.batch for c in result.checks] == [0, 4, 8, 12]
    assert [c.true_task for c in result.checks] == [0, 0, 1, 1]
    first = result.checks[0]
    assert (first.mask, first.allocated) == (0, True)
    learned = 1
    for check in result.checks[1:]:
        assert check.num_superposed == max(learned, 5)
        assert check.threshold == pytest.approx((1 + 2**-3) / check.num_superposed)
        assert check.allocated == (check.max_nu < check.threshold)
        assert check.mask == learned if check.allocated else check.mask < learned  # never an unlearned mask
        learned += check.allocated
    assert result.masks_allocated == learned
    assert result.true_tasks == 2
    assert len(result.mask_of_task) == 2


def test_a_tiny_epsilon_never_allocates_after_the_first_mask(stream):
    # max ν >= 1/n always, so with ε -> 0 the data never looks new
    result = train_nn(_model(stream), stream, _config(epsilon=1e-9))
    assert result.masks_allocated == 1
    assert result.mask_of_task == [0, 0]


def test_a_huge_epsilon_allocates_at_every_check_up_to_max_masks(stream):
    assert train_nn(_model(stream), stream, _config(epsilon=100.0)).masks_allocated == 4
    assert train_nn(_model(stream), stream, _config(epsilon=100.0, max_masks=3)).masks_allocated == 3


def test_model_must_start_empty(stream):
    with pytest.raises(ValueError, match="starts from a model with no task"):
        train_nn(_model(stream, num_tasks=1), stream, _config())


@pytest.mark.parametrize("field, value, match", [
    ("check_every", 0, "check_every must be >= 1"),
    ("check_every", 2.5, "check_every must be an integer"),
    ("epsilon", 0.0, "epsilon must be > 0"),
    ("epsilon", float("nan"), "epsilon must be a finite number"),
    ("min_masks", 0, "min_masks must be >= 1"),
    ("max_masks", 0, "max_masks must be >= 1"),
])
def test_bad_config_is_an_error(field, value, match):
    with pytest.raises(ValueError, match=match):
        _config(**{field: value})


def test_fresh_masks_are_seeded_per_mask_id_apart_from_the_batch_orders(stream):
    # NN results must not change with the seeding helper: mask k's scores come from stream (seed, 10_000 + k)
    model, reference = _model(stream), _model(stream)
    nn_training._ensure_masks(model, 3, seed=7)
    for k in range(3):
        modes.add_task(reference, generator=seeded_generator(7, 10_000 + k))
    for k in range(3):
        assert all(torch.equal(a, b) for a, b in zip(modes.task_parameters(model, k), modes.task_parameters(reference, k)))


def test_default_evaluation_is_gns_oneshot_entropy_over_the_stream_classes(stream):
    assert default_nn_evaluation(stream) == GNConfig(scenario="GNs", inference="oneshot", objective="entropy",
                                                     real_outputs=stream.num_classes)


def test_an_nn_run_returns_and_writes_its_typed_results(tmp_path, stream):
    train = TrainConfig(iterations=8, batch_size=32, lr=1e-3)
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=stream.input_shape, output_size=10, num_tasks=0, width=16),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=2), train=train)
    with RunDirectory.create(tmp_path / "nn", config) as run:
        results = train_nn_run(run, NNConfig(train=train, check_every=4), stream=stream)  # the default evaluation
        assert isinstance(results, NNRunResults) and results.finished
        assert results.evaluation == dataclasses.asdict(default_nn_evaluation(stream))
        assert results.masks_allocated == sum(c.allocated for c in results.checks) == len(run.saved_tasks())
        assert len(results.mask_of_task) == len(results.own_mask_per_task_accuracy) == results.true_tasks == 2
        assert NNRunResults.from_run(run) == results  # results.json holds exactly what was returned
