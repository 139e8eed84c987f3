"""Training one task's scores: only that task changes, it learns, and the config validates itself."""
import pytest
import torch

from supsup_core import modes
from supsup_core.datasets import load_digits
from supsup_core.models import ModelConfig, build_model
from supsup_core.streams import PermutedStream, SplitStream
from supsup_core.training import OPTIMIZERS, TrainConfig, evaluate_task, task_generator, train_task


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _model(name="lenet", num_tasks=2, width=32, **kw):
    return build_model(ModelConfig(name=name, input_shape=(1, 8, 8), num_tasks=num_tasks, width=width, **kw), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("optimizer, lr", [("rmsprop", 1e-2), ("adam", 1e-2), ("sgd", 0.5)])
def test_train_task_changes_only_its_own_scores_and_learns(digits, optimizer, lr):
    stream = PermutedStream(data=digits, num_tasks=2, seed=0)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_task(model, 1, stream, TrainConfig(iterations=60, batch_size=64, optimizer=optimizer, lr=lr), generator=task_generator(0, 1))
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith("scores.1") for k in changed), changed
    assert result.iterations == 60 and result.final_loss < 2.0
    assert evaluate_task(model, 1, stream) > 0.6


def test_bnnet_neuron_masks_learn_split_digits(digits):
    stream = SplitStream(data=digits, num_tasks=5)
    model = _model("bnnet", num_tasks=1, width=64)
    train_task(model, 0, stream, TrainConfig(epochs=3, batch_size=32, optimizer="sgd", lr=0.1, weight_decay=1e-4), generator=task_generator(0, 0))
    assert evaluate_task(model, 0, stream, batch_size=128) > 0.9


def test_epochs_round_up_to_whole_batches():
    assert TrainConfig(epochs=1, batch_size=128).num_batches(1000) == 8
    assert TrainConfig(epochs=0.5, batch_size=100).num_batches(1000) == 5
    assert TrainConfig(iterations=7).num_batches(10) == 7


def test_task_generator_is_deterministic_and_distinct_per_task():
    draw = lambda s, t: torch.rand(3, generator=task_generator(s, t))
    assert torch.equal(draw(0, 1), draw(0, 1)) and not torch.equal(draw(0, 1), draw(0, 2)) and not torch.equal(draw(0, 1), draw(1, 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"iterations": 5, "epochs": 1}, "exactly one of iterations and epochs"),
    ({}, "exactly one"),
    ({"iterations": 0}, "iterations"),
    ({"iterations": 5, "optimizer": "lbfgs"}, "optimizer"),
    ({"iterations": 5, "optimizer": "adam", "momentum": 0.9}, "adam takes no momentum"),
    ({"iterations": 5, "lr": 0}, "lr"),
    ({"iterations": 5, "weight_decay": -1}, "weight_decay"),
])
def test_train_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_frozen_task_cannot_be_trained(digits):
    stream = PermutedStream(data=digits, num_tasks=1, seed=0)
    model = _model(num_tasks=1)
    for layer in modes.masked_layers(model).values():
        layer.freeze_task(0)
    with pytest.raises(ValueError, match="frozen"):
        train_task(model, 0, stream, TrainConfig(iterations=1), generator=torch.Generator())


def test_registry_names():
    assert set(OPTIMIZERS) == {"sgd", "adam", "rmsprop"}
