"""A PSP linear layer: one task equals a plain layer on the context-transformed input; tasks share the weight."""
import pytest
import torch
import torch.nn.functional as F

from supsup_core.baselines.contexts import task_context
from supsup_core.baselines.psp import PSPConv2d, PSPLinear
from supsup_core.nn import modes
from supsup_core.nn.task_modules import task_modules


@pytest.mark.parametrize("kind", ["rotation", "complex", "binary"])
def test_one_task_equals_a_plain_layer_on_the_transformed_input(kind, generator):
    layer = PSPLinear(12, 5, kind=kind, seed=3, layer=1, num_tasks=2, generator=generator)
    x = torch.randn(7, 12, generator=generator)
    layer.set_task(1)
    c = task_context(kind, 12, seed=3, task_id=1, layer=1)
    if kind == "rotation":
        expected = F.linear(x @ c.T, layer.weight, layer.bias)
    elif kind == "binary":
        expected = F.linear(x * c, layer.weight, layer.bias)
    else:  # the real part of the complex layer's output
        expected = (x.to(torch.complex64) * c) @ layer.weight.T
        expected = expected.real + layer.bias
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).dtype == torch.float32


def test_tasks_differ_only_by_their_context_and_train_the_shared_weight(generator):
    layer = PSPLinear(8, 3, kind="binary", seed=0, num_tasks=2, generator=generator)
    x = torch.randn(4, 8, generator=generator)
    layer.set_task(0)
    first = layer(x)
    layer.set_task(1)
    assert not torch.allclose(layer(x), first)
    assert layer.task_parameters(0) == layer.task_parameters(1) == []  # nothing is a task's own: all is shared
    assert list(layer.parameters()) == [layer.weight, layer.bias]
    assert layer.task_state(1) == {} and layer.context_nbytes() == 4 * 8
    assert "context_1" not in layer.state_dict()  # rebuilt from the seed, never saved


def test_a_frozen_task_redraws_the_same_context_so_a_reload_matches(generator):
    trained = PSPLinear(6, 2, kind="rotation", seed=9, num_tasks=3, generator=generator)
    loaded = PSPLinear(6, 2, kind="rotation", seed=9, generator=generator)
    loaded.load_state_dict(trained.state_dict())
    for t in range(3):
        assert loaded.add_frozen_task(trained.task_state(t)) == t
    x = torch.randn(3, 6, generator=generator)
    for t in range(3):
        trained.set_task(t), loaded.set_task(t)
        assert torch.equal(trained(x), loaded(x))


def test_the_model_level_helpers_reach_psp_layers(generator):
    model = torch.nn.Sequential(PSPLinear(4, 4, kind="complex", seed=1, layer=0, generator=generator), torch.nn.ReLU(),
                                PSPLinear(4, 2, kind="complex", seed=1, layer=1, generator=generator))
    assert list(task_modules(model)) == ["0", "2"] and modes.add_task(model) == 0 and modes.num_tasks(model) == 1
    assert not torch.equal(model[0].context(0), model[2].context(0))  # each layer its own context
    model(torch.randn(2, 4, generator=generator)).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.dtype == torch.complex64


def test_bad_psp_layers_name_the_fix():
    with pytest.raises(ValueError, match="context kind must be one of"):
        PSPLinear(4, 2, kind="spin", seed=0)
    layer = PSPLinear(4, 2, kind="binary", seed=0)
    with pytest.raises(ValueError, match="call add_task"):
        layer.set_task(0)
    with pytest.raises(ValueError, match="no state to start from"):
        layer.add_task({"scores": torch.zeros(2)})


@pytest.mark.parametrize("make", [lambda: PSPLinear(4, 3, kind="rotation", seed=0, num_tasks=2),
                                  lambda: PSPConv2d(2, 3, 2, kind="complex", seed=0, num_tasks=2)])
def test_contexts_follow_the_layer_to_a_device_and_stay_out_of_the_state_dict(make):
    layer = make()
    assert list(layer.state_dict()) == ["weight", "bias"]
    layer.to("meta")  # a device without CUDA: every tensor of the module must go along
    assert {layer.context(t).device.type for t in range(2)} == {"meta"}
    assert layer.add_task() == 2 and layer.context(2).device.type == "meta"


@pytest.mark.parametrize("kind", ["rotation", "complex"])
def test_with_powers_a_layer_holds_one_context_whatever_the_number_of_tasks(kind, generator):
    layer = PSPLinear(12, 3, kind=kind, seed=4, powers=True, num_tasks=6, generator=generator)
    buffers = dict(layer.named_buffers())
    assert list(buffers) == ["context_base"] and layer.context_nbytes() == 0
    base = layer.context_base
    for t in (0, 3, 5):
        expected = torch.linalg.matrix_power(base.double(), t + 1).float() if kind == "rotation" else base ** (t + 1)
        torch.testing.assert_close(layer.context(t), expected)


def test_appended_contexts_equal_drawn_ones_and_pop_removes_them(generator):
    layer = PSPLinear(5, 2, kind="rotation", seed=1, layer=2, num_tasks=1, generator=generator)
    assert layer.append_context(layer.draw_context(1)) == 1
    reference = PSPLinear(5, 2, kind="rotation", seed=1, layer=2, num_tasks=2, generator=generator)
    assert torch.equal(layer.context(1), reference.context(1))
    layer.set_task(1)
    layer.pop_tasks(1)
    assert layer.num_tasks == 1 and "context_1" not in dict(layer.named_buffers())
    with pytest.raises(ValueError, match="cannot remove 2 tasks: this layer holds 1"):
        layer.pop_tasks(2)


def test_complex_and_real_layers_start_with_outputs_of_the_same_scale():
    x = torch.randn(4096, 256, generator=torch.Generator().manual_seed(0))
    stds = {}
    for kind in ("rotation", "complex", "binary"):
        layer = PSPLinear(256, 256, kind=kind, seed=0, num_tasks=1, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            stds[kind] = float((layer(x) - layer.bias).std())
    assert all(abs(std / stds["rotation"] - 1) < 0.1 for std in stds.values()), stds
