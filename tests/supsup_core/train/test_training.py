"""Training one task's scores: only that task changes, it learns, and the config validates itself."""
import pytest
import torch

from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import PermutedStream, SplitStream
from supsup_core.nn import fused, modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.train.training import (
    OPTIMIZERS,
    TrainConfig,
    evaluate_task,
    make_optimizer,
    optimizer_implementation,
    task_generator,
    train_task,
)


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
    fused_ran = optimizer == "rmsprop" and fused.kernels_available()
    assert result.optimizer == ("fused-cpu-rmsprop" if fused_ran else f"torch-{optimizer}")


def test_runs_with_and_without_the_fused_kernel_give_the_same_masks(digits, monkeypatch):
    """The fused CPU kernel and torch's RMSprop round differently, so a mask bit may flip, but only where
    its score sits within rounding of the threshold: compared with a margin, never bit for bit."""
    stream = PermutedStream(data=digits, num_tasks=1, seed=0)
    config = TrainConfig(iterations=60, batch_size=64, lr=1e-2)

    def run(switch: str):
        monkeypatch.setenv("SUPSUP_FUSED", switch)
        fused._kernel.cache_clear()
        model = _model(num_tasks=1, width=64)
        result = train_task(model, 0, stream, config, generator=task_generator(0, 0))
        return result, [layer.task_scores(0).detach().clone() for layer in modes.masked_layers(model).values()]

    try:
        with_kernel, fused_scores = run("1")
        without, torch_scores = run("0")
    finally:
        fused._kernel.cache_clear()
    if with_kernel.optimizer != "fused-cpu-rmsprop":
        pytest.skip("the fused kernel does not build here")
    assert without.optimizer == "torch-rmsprop"
    margin = 1e-3  # measured differences are ~4e-7 after 100 steps; scores are ~0.1-0.4 in magnitude
    for got, want in zip(fused_scores, torch_scores):
        flipped = (got >= 0) != (want >= 0)
        assert torch.maximum(got.abs(), want.abs())[flipped].le(margin).all()  # flips only at the threshold
        assert flipped.sum() <= max(1, got.numel() // 1000)
        torch.testing.assert_close(got, want, rtol=0, atol=margin)
    assert abs(with_kernel.final_loss - without.final_loss) < 1e-3


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
    ({"iterations": 5, "epochs": 1}, "at most one of iterations and epochs"),
    ({"iterations": 0}, "iterations"),
    ({"iterations": 5, "optimizer": "lbfgs"}, "optimizer"),
    ({"iterations": 5, "optimizer": "adam", "momentum": 0.9}, "adam takes no momentum"),
    ({"iterations": 5, "lr": 0}, "lr"),
    ({"iterations": 5, "weight_decay": -1}, "weight_decay"),
    ({"iterations": 1.5}, "iterations must be an integer; got 1.5"),
    ({"iterations": True}, "iterations must be an integer"),
    ({"iterations": 5, "batch_size": 64.0}, "batch_size must be an integer"),
    ({"iterations": 5, "eval_batch_size": 0}, "eval_batch_size must be >= 1"),
    ({"epochs": float("inf")}, "epochs must be a finite number"),
    ({"epochs": float("nan")}, "epochs must be a finite number"),
    ({"iterations": 5, "lr": float("nan")}, "lr must be a finite number"),
    ({"iterations": 5, "lr": float("inf")}, "lr must be a finite number"),
    ({"iterations": 5, "momentum": float("nan")}, "momentum must be a finite number"),
    ({"iterations": 5, "momentum": -0.1}, r"momentum must lie in \[0, 1\)"),
    ({"iterations": 5, "momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
    ({"iterations": 5, "weight_decay": float("inf")}, "weight_decay must be a finite number"),
    ({"iterations": 5, "weight_decay": float("nan")}, "weight_decay must be a finite number"),
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


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_trains_exactly_the_tasks_scores(name):
    model = _model(num_tasks=3)
    opt = make_optimizer(model, 1, TrainConfig(iterations=1, optimizer=name))
    trained = [p for group in opt.param_groups for p in group["params"]]
    expected = [layer.task_scores(1) for layer in modes.masked_layers(model).values()]
    assert len(trained) == len(expected) and all(a is b for a, b in zip(trained, expected))
    assert optimizer_implementation(opt).startswith(("torch-", "fused-cpu-"))


def test_the_declared_torch_admits_only_versions_with_cpu_fused_sgd_and_adam():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.version import Version

    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    (spec,) = [Requirement(r).specifier for r in pyproject["project"]["dependencies"] if Requirement(r).name == "torch"]
    # torch 2.4 added the CPU kernels of fused SGD and Adam; before it, fused=True on CPU tensors raises
    assert not spec.contains(Version("2.3.1")) and spec.contains(Version("2.4.0"))
    assert spec.contains(Version("2.13.0"))  # the README's pin
    params = [torch.nn.Parameter(torch.ones(3))]
    for name in ("sgd", "adam"):  # and the installed one runs them
        params[0].grad = torch.ones(3)
        OPTIMIZERS[name](params, TrainConfig(iterations=1, optimizer=name, lr=0.1)).step()
    assert params[0].lt(1).all()


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_task_without_samples_is_an_error_not_a_score_of_zero(digits, split):
    x, y = getattr(digits, f"{split}_x"), getattr(digits, f"{split}_y")
    stream = PermutedStream(data=digits._replace(**{f"{split}_x": x[:0], f"{split}_y": y[:0]}), num_tasks=1, seed=0)
    model = _model(num_tasks=1)
    with pytest.raises(ValueError, match=f"no {split}(ing)? samples"):
        train_task(model, 0, stream, TrainConfig(epochs=1), generator=task_generator(0, 0))
        evaluate_task(model, 0, stream)
