"""PSP as a method: its network against a plain one on context-transformed inputs, the memory a task costs, the
accuracy of tasks not trained yet, and what its optimizers train (the weights, never a context)."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from supsup_core.baselines.contexts import task_context
from supsup_core.baselines.psp_methods import (
    PSPBinary,
    PSPComplex,
    PSPRotation,
    psp_layers,
)
from supsup_core.nn import modes
from supsup_core.train import continual
from supsup_core.train.methods import get_method
from supsup_core.train.training import TrainConfig, make_shared_optimizer
from tests.supsup_core.baselines.helpers import (
    fixed_inputs,
    run_config,
    tiny_model,
    train,
)

PSP_METHODS = {"rotation": "psp-rotation", "complex": "psp-complex", "binary": "psp-binary"}
KINDS_AND_POWERS = [("rotation", False), ("complex", False), ("binary", False), ("rotation", True), ("complex", True)]
LAYER_INPUTS = (64, 16, 5)
"""Inputs of the tiny LeNet's three layers: N of each context."""


def _model(kind: str, *, num_tasks: int, seed: int = 7, powers: bool = False):
    method = get_method(PSP_METHODS[kind], seed=seed, context_powers=powers)
    model = method.build_model(tiny_model(), torch.Generator().manual_seed(0))
    for _ in range(num_tasks):
        method.start_task(model)
    return method, model


def _plain_network(model, x: torch.Tensor, kind: str, *, seed: int, task_id: int, powers: bool) -> torch.Tensor:
    """The network as plain linear maps, each on its input transformed by task ``task_id``'s context drawn anew."""
    layers, h = psp_layers(model), x.flatten(1)
    for index, layer in enumerate(layers):
        c = task_context(kind, layer.in_features, seed=seed, task_id=task_id, layer=index, powers=powers)
        if kind == "rotation":
            h = F.linear(torch.einsum("ij,nj->ni", c, h), layer.weight, layer.bias)  # W (C x) + b
        elif kind == "binary":
            h = F.linear(c * h, layer.weight, layer.bias)
        else:  # Re(W (c ⊙ x)) + b
            h = (c * h.to(torch.complex64)) @ layer.weight.T
            h = h.real + layer.bias
        h = torch.relu(h) if index < len(layers) - 1 else h
    return h


@pytest.mark.parametrize("kind, powers", KINDS_AND_POWERS)
def test_the_model_is_a_plain_network_on_context_transformed_inputs(kind, powers):
    method, model = _model(kind, num_tasks=3, powers=powers)
    layers = psp_layers(model)
    assert [layer.layer for layer in layers] == [0, 1, 2] and {layer.seed for layer in layers} == {7}
    assert [layer.in_features for layer in layers] == list(LAYER_INPUTS) and {layer.powers for layer in layers} == {powers}
    x = fixed_inputs()
    with torch.no_grad():
        for task_id in range(3):
            modes.set_task(model, task_id)
            torch.testing.assert_close(model(x), _plain_network(model, x, kind, seed=7, task_id=task_id, powers=powers),
                                       rtol=1e-4, atol=1e-5)


def test_the_same_seed_builds_the_same_network_and_another_seed_other_contexts():
    (_, a), (_, b), (_, c) = (_model("binary", num_tasks=1, seed=s) for s in (7, 7, 8))
    x = fixed_inputs()
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))  # the weights follow the generator


def test_psp_binary_refuses_context_powers():
    with pytest.raises(ValueError, match=r"powers of a binary context repeat every second task \(C² = I\); use --context-powers "
                                         r"with rotation or complex contexts \(psp-rotation, psp-complex\) only"):
        get_method("psp-binary", context_powers=True)
    assert PSPRotation(context_powers=True).context_powers and PSPComplex(context_powers=True).context_powers


@pytest.mark.parametrize("kind, powers, per_layer", [
    ("rotation", False, lambda n: 4 * n * n), ("complex", False, lambda n: 8 * n), ("binary", False, lambda n: 4 * n),
    ("rotation", True, lambda n: 0), ("complex", True, lambda n: 0),
])
def test_memory_per_task_is_the_sum_of_its_contexts(kind, powers, per_layer):
    method, model = _model(kind, num_tasks=2, powers=powers)
    expected = sum(per_layer(n) for n in LAYER_INPUTS)
    assert method.memory_bytes_per_task(model, 0) == method.memory_bytes_per_task(model, 1) == expected
    complex_weights = kind == "complex"  # complex64 weights, float32 biases
    weights = sum(n * m for n, m in zip(LAYER_INPUTS, (16, 5, 10)))
    assert method.shared_bytes(model) == (8 if complex_weights else 4) * weights + 4 * (16 + 5 + 10)


@pytest.mark.parametrize("kind, powers", KINDS_AND_POWERS)
def test_untrained_task_accuracy_leaves_the_model_as_it_was(kind, powers):
    method, model = _model(kind, num_tasks=1, powers=powers)
    before = copy.deepcopy(model.state_dict())
    seen = []

    def accuracy_of(probe, task_id):
        layer = psp_layers(probe)[1]
        seen.append((probe is model, modes.num_tasks(probe), task_id))
        assert torch.equal(layer.context(task_id), task_context(kind, 16, seed=7, task_id=task_id, layer=1, powers=powers))
        assert all(torch.equal(p, q) for p, q in zip(probe.parameters(), model.parameters()))  # the current weights
        return task_id / 10

    assert method.untrained_task_accuracy(model, accuracy_of, [1, 3]) == [0.1, 0.3]
    assert seen == [(True, 4, 1), (True, 4, 3)]  # the contexts it lacked were added for the evaluation
    assert modes.num_tasks(model) == 1 and model.state_dict().keys() == before.keys()  # and removed after it
    assert [name for name, _ in model.named_buffers() if name.startswith("layers.1.context_")] == (
        ["layers.1.context_base"] if powers else ["layers.1.context_0"])
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert method.untrained_task_accuracy(model, accuracy_of, []) == []


@pytest.mark.parametrize("kind", ["rotation", "complex", "binary"])
def test_the_shared_optimizer_holds_the_weights_never_a_context(kind):
    method, model = _model(kind, num_tasks=2)
    optimizer = make_shared_optimizer(method.shared_parameters(model), TrainConfig(lr=1e-2))
    trained = [p for group in optimizer.param_groups for p in group["params"]]
    contexts = [layer.context(t) for layer in psp_layers(model) for t in range(2)]
    assert {id(p) for p in trained} == {id(p) for layer in psp_layers(model) for p in (layer.weight, layer.bias)}
    assert not any(p is c or p.data_ptr() == c.data_ptr() for p in trained for c in contexts)
    before = [c.clone() for c in contexts]
    modes.set_task(model, 1)
    model(fixed_inputs()).square().sum().backward()
    optimizer.step()
    assert all(torch.equal(c, b) for c, b in zip(contexts, before))
    assert all(not c.requires_grad and c.grad is None for c in contexts)


@pytest.fixture
def optimizers_of_each_task(monkeypatch):
    """What train_run hands train_task for each task: the per-task params and the shared optimizer's params."""
    seen, real = [], continual.train_task

    def spy(model, task_id, *args, params=None, shared_optimizer=None, **kw):
        shared = [] if shared_optimizer is None else [p for g in shared_optimizer.param_groups for p in g["params"]]
        contexts = [layer.context(task_id) for layer in psp_layers(model)]
        seen.append((list(params or []), shared, contexts))
        return real(model, task_id, *args, params=params, shared_optimizer=shared_optimizer, **kw)

    monkeypatch.setattr(continual, "train_task", spy)
    return seen


def test_a_run_never_trains_a_context(tmp_path, optimizers_of_each_task):
    train(tmp_path / "run", run_config("psp-rotation", num_tasks=2, iterations=2))
    assert len(optimizers_of_each_task) == 2
    for params, shared, contexts in optimizers_of_each_task:
        assert shared and not any(p is c for p in params + shared for c in contexts)


def test_each_psp_weight_is_stepped_by_one_optimizer(tmp_path, optimizers_of_each_task):
    train(tmp_path / "run", run_config("psp-binary", num_tasks=2, iterations=2))
    for params, shared, _ in optimizers_of_each_task:
        assert not {id(p) for p in params} & {id(p) for p in shared}


def test_psp_methods_are_the_three_kinds():
    assert (PSPRotation.kind, PSPComplex.kind, PSPBinary.kind) == ("rotation", "complex", "binary")
    assert all(math.isclose(get_method(name).train_defaults["lr"], 1e-4) for name in PSP_METHODS.values())
