"""The bounds: a per-task linear layer, one network fine-tuned through the tasks, a head per task on a fine-tuned
trunk, and a separate network per task; every baseline builds only the fully connected models."""
import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from supsup_core.baselines.bounds import (
    FineTune,
    FineTuneMultiHead,
    Separate,
    TaskLinear,
    plain_linear,
)
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig
from supsup_core.nn.task_modules import task_modules
from supsup_core.train.methods import get_method
from supsup_core.train.runs import RunDirectory
from tests.supsup_core.baselines.helpers import (
    BASELINES,
    assert_refuses_missing_tasks,
    assert_refuses_state,
    fixed_inputs,
    run_config,
    tiny_model,
    train,
)

LENET_PARAMS = (64 * 16 + 16) + (16 * 5 + 5) + (5 * 10 + 10)
"""Weights and biases of the tiny LeNet 64-16-5-10."""


# ----------------------------------------------------------------------------------------------- TaskLinear
def test_task_linear_draws_each_task_like_nn_linear_from_the_generator():
    layers = [TaskLinear(6, 3) for _ in range(2)]
    for layer in layers:
        generator = torch.Generator().manual_seed(4)
        assert [layer.add_task(generator=generator) for _ in range(2)] == [0, 1]
    for t in range(2):
        assert torch.equal(layers[0].weights[t], layers[1].weights[t]) and torch.equal(layers[0].biases[t], layers[1].biases[t])
        assert layers[0].weights[t].abs().max() <= 1 / math.sqrt(6) and layers[0].biases[t].abs().max() <= 1 / math.sqrt(6)
    assert not torch.equal(layers[0].weights[0], layers[0].weights[1])
    assert TaskLinear(6, 3, num_tasks=2).num_tasks == 2


def test_task_linear_is_a_plain_linear_layer_per_task(generator):
    layer, x = TaskLinear(5, 2, num_tasks=3), torch.randn(4, 5, generator=generator)
    for t in range(3):
        layer.set_task(t)
        assert torch.equal(layer(x), F.linear(x, layer.weights[t], layer.biases[t]))
        assert layer.task_parameters(t) == [layer.weights[t], layer.biases[t]]


def test_task_linear_round_trips_a_task_frozen(generator):
    trained, loaded, x = TaskLinear(5, 2, num_tasks=2), TaskLinear(5, 2), torch.randn(4, 5, generator=generator)
    for t in range(2):
        assert loaded.add_frozen_task(trained.task_state(t)) == t
        trained.set_task(t), loaded.set_task(t)
        assert torch.equal(loaded(x), trained(x))
        assert loaded.task_parameters(t) == [] and not loaded.weights[t].requires_grad
    trained.freeze_task(1)
    assert trained.task_parameters(1) == [] and not trained.biases[1].requires_grad and trained.task_parameters(0) != []


@pytest.mark.parametrize("state, match", [
    ({"weight": torch.ones(2, 5)}, r"TaskLinear task's state holds \['bias', 'weight'\]; got \['weight'\]\. The file belongs to another method"),
    ({"weight": torch.ones(5, 2), "bias": torch.ones(2)}, r"shapes \{'weight': \(5, 2\)\} does not fit this TaskLinear .*the file belongs to another run"),
    ({"weight": torch.ones(2, 5), "bias": torch.ones(5)}, "the file belongs to another run"),
])
def test_task_linear_refuses_a_bad_task_state(state, match):
    assert_refuses_state(TaskLinear(5, 2), state, match)


def test_task_linear_refuses_tasks_it_does_not_hold():
    with pytest.raises(ValueError, match="out_features"):
        TaskLinear(3, 0)
    assert_refuses_missing_tasks(TaskLinear(3, 2, num_tasks=1))


# ---------------------------------------------------------------------------------------------- plain_linear
def test_plain_linear_draws_from_the_generator():
    def draw(seed):
        return plain_linear(7, 3, torch.Generator().manual_seed(seed))

    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight) and not torch.equal(a.bias, c.bias)
    assert a.weight.abs().max() <= 1 / math.sqrt(7) and a.weight.shape == (3, 7) and a.bias.shape == (3,)


# ------------------------------------------------------------------------------------------------- methods
@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("model", ["bnnet", "resnet18"])
def test_every_baseline_refuses_models_other_than_lenet_and_fc1024(method, model):
    config = ModelConfig(name=model, input_shape=(1, 8, 8), num_tasks=0)
    match = rf"method '{method}' is built for the models lenet, fc1024; got '{model}'\. Use --model lenet, or --method supsup for {model}"
    with pytest.raises(ValueError, match=match):
        get_method(method).build_model(config)
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(run_config(method), model=config)  # RunConfig checks it before anything is written


def test_finetune_is_one_network_whose_every_weight_trains(tmp_path):
    method = FineTune()
    model = method.build_model(tiny_model())
    assert task_modules(model) == {} and method.shared_parameters(model) == list(model.parameters())
    assert all(method.trains_shared(t) for t in range(3))
    train(tmp_path / "run", run_config("finetune", num_tasks=2, lr=1e-2))
    run = RunDirectory.open(tmp_path / "run")
    initial, shared = run.load_model(initial_weights=True).state_dict(), run.read_shared()
    assert shared.after_task == 1 and set(shared.weights) == set(initial)
    assert all(not torch.equal(shared.weights[key], value) for key, value in initial.items())
    assert all(run.read_task(t).modules == {} for t in range(2))  # nothing per task
    results = json.loads(run.results_path.read_text())
    assert results["memory_bytes_per_task"] == 0 and results["shared_bytes"] == 4 * LENET_PARAMS


def test_finetune_multihead_keeps_a_head_per_task_on_one_trunk(tmp_path):
    method = FineTuneMultiHead()
    model = method.build_model(tiny_model())
    assert list(task_modules(model)) == ["layers.2"]
    assert method.shared_parameters(model) == [*model.layers[0].parameters(), *model.layers[1].parameters()]
    train(tmp_path / "run", run_config("finetune-multihead", num_tasks=2, lr=1e-2))
    run = RunDirectory.open(tmp_path / "run")
    heads = [run.read_task(t).modules for t in range(2)]
    assert all(set(head) == {"layers.2"} and set(head["layers.2"]) == {"weight", "bias"} for head in heads)
    assert heads[0]["layers.2"]["weight"].shape == (10, 5)
    assert not torch.equal(heads[0]["layers.2"]["weight"], heads[1]["layers.2"]["weight"])
    shared, initial = run.read_shared(), run.load_model(num_tasks=0, initial_weights=True).state_dict()
    assert sorted(shared.weights) == sorted(initial) == ["layers.0.bias", "layers.0.weight", "layers.1.bias", "layers.1.weight"]
    assert all(not torch.equal(shared.weights[key], value) for key, value in initial.items())  # the trunk trained
    loaded = run.load_model()
    assert torch.equal(loaded.layers[2].weights[0], heads[0]["layers.2"]["weight"])
    results = json.loads(run.results_path.read_text())
    assert results["memory_bytes_per_task"] == 4 * (5 * 10 + 10)


def test_separate_keeps_a_whole_network_per_task_that_never_changes(tmp_path):
    assert not any(Separate().trains_shared(t) for t in range(3))
    path, first = tmp_path / "run", {}
    result = train(path, run_config("separate", lr=1e-2),
                   on_task_end=lambda t, row: first.setdefault("task 0", (path / "masks" / "task_000.safetensors").read_bytes()))
    run = RunDirectory.open(path)
    assert (path / "masks" / "task_000.safetensors").read_bytes() == first["task 0"]
    assert [row[0] for row in result.accuracy_matrix] == [result.accuracy_matrix[0][0]] * 3
    assert not run.shared_path.exists()
    for t in range(3):  # a task file is a float32 network and its header
        assert 4 * LENET_PARAMS < run.mask_bytes(t) < 4 * LENET_PARAMS + 2048
        assert sorted(run.read_task(t).modules) == ["layers.0", "layers.1", "layers.2"]
    results = json.loads(run.results_path.read_text())
    assert results["memory_bytes_per_task"] == 4 * LENET_PARAMS and results["shared_bytes"] == 0
    model, x = run.load_model(), fixed_inputs()
    outputs = []
    for t in range(3):
        modes.set_task(model, t)
        outputs.append(model(x))
    assert not torch.allclose(outputs[0], outputs[1])  # nothing shared: each task its own network
