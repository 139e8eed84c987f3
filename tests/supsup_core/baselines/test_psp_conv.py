"""A PSP convolution: task t convolves with the superposed kernel W C_t, which is W (C_t patch) at every position."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from supsup_core.baselines.contexts import context_nbytes, task_context
from supsup_core.baselines.psp import PSPConv2d, PSPLinear
from supsup_core.nn import modes

KINDS = ["rotation", "complex", "binary"]


def superposed_kernel(weight: torch.Tensor, context: torch.Tensor, kind: str) -> torch.Tensor:
    """W C built by hand: W viewed as (out, N) times the (N, N) rotation, or scaled by the (N,) diagonal; real part."""
    flat = weight.reshape(weight.shape[0], -1)
    flat = flat @ context.to(flat.dtype) if kind == "rotation" else flat * context
    return flat.real.reshape(weight.shape) if kind == "complex" else flat.reshape(weight.shape)


def patchwise(layer: PSPConv2d, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The PSP linear map Re(W (C patch)) + b on every unfolded patch of ``x``: shape (batch, out, H', W')."""
    patches = F.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)  # (B, N, L)
    if layer.kind == "rotation":
        patches = context @ patches
    else:
        patches = patches.to(context.dtype) * context[:, None]
    out = (layer.weight.flatten(1) @ patches.to(layer.weight.dtype)).real + layer.bias[:, None]
    side = (x.shape[-1] + 2 * layer.padding - layer.kernel_size) // layer.stride + 1
    return out.reshape(x.shape[0], layer.out_channels, -1, side)


@pytest.mark.parametrize("kind", KINDS)
def test_one_task_equals_a_plain_conv_with_the_superposed_kernel(kind, generator):
    layer = PSPConv2d(3, 4, 3, stride=2, padding=1, kind=kind, seed=5, layer=2, num_tasks=2, generator=generator)
    x = torch.randn(2, 3, 9, 9, generator=generator)
    layer.set_task(1)
    c = task_context(kind, 3 * 3 * 3, seed=5, task_id=1, layer=2)
    expected = F.conv2d(x, superposed_kernel(layer.weight, c, kind), layer.bias, stride=2, padding=1)
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-4)
    assert layer(x).dtype == torch.float32 and layer(x).shape == (2, 4, 5, 5)
    assert layer.weight.dtype == (torch.complex64 if kind == "complex" else torch.float32)
    assert layer.context_nbytes() == context_nbytes(kind, 27)


@settings(derandomize=True, deadline=None, max_examples=20)
@given(seed=st.integers(0, 2**31 - 1), kind=st.sampled_from(KINDS), channels=st.integers(1, 4),
       kernel=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1))
def test_the_kernel_is_superposed_not_the_image(seed, kind, channels, kernel, stride, padding):
    # every output position is the PSP linear map on its patch: W (C_t patch), C_t over channels × kernel positions
    generator = torch.Generator().manual_seed(seed)
    layer = PSPConv2d(channels, 3, kernel, stride=stride, padding=padding, kind=kind, seed=seed, num_tasks=1,
                      generator=generator)
    x = torch.randn(2, channels, 6, 6, generator=generator)
    torch.testing.assert_close(layer(x), patchwise(layer, x, layer.context(0)), atol=1e-5, rtol=1e-4)


def test_a_one_by_one_binary_conv_is_a_plain_conv_on_sign_flipped_channels(generator):
    layer = PSPConv2d(5, 2, 1, kind="binary", seed=1, num_tasks=1, generator=generator)
    x = torch.randn(3, 5, 4, 4, generator=generator)
    signs = task_context("binary", 5, seed=1, task_id=0)
    torch.testing.assert_close(layer(x), F.conv2d(x * signs.view(1, 5, 1, 1), layer.weight, layer.bias))


@pytest.mark.parametrize("kind", KINDS)
def test_tasks_and_layers_draw_different_contexts(kind, generator):
    first = PSPConv2d(2, 3, 3, kind=kind, seed=0, layer=0, num_tasks=2, generator=generator)
    second = PSPConv2d(2, 3, 3, kind=kind, seed=0, layer=1, num_tasks=1, generator=generator)
    assert not torch.equal(first.context(0), first.context(1))
    assert not torch.equal(first.context(0), second.context(0))
    x = torch.randn(2, 2, 5, 5, generator=generator)
    first.set_task(0)
    task_0 = first(x)
    first.set_task(1)
    assert not torch.allclose(first(x), task_0)


@pytest.mark.parametrize("kind", ["rotation", "complex"])
def test_powers_give_task_t_the_power_t_plus_one_of_one_context(kind, generator):
    layer = PSPConv2d(2, 3, 2, kind=kind, seed=4, powers=True, num_tasks=3, generator=generator)
    base = task_context(kind, 8, seed=4, task_id=0)
    assert torch.equal(layer.context(0), base) and layer.context_nbytes() == 0
    if kind == "rotation":
        expected = torch.linalg.matrix_power(base.double(), 3).float()
    else:
        expected = base * base * base
    torch.testing.assert_close(layer.context(2), expected, atol=1e-5, rtol=0)


def test_a_frozen_task_redraws_the_same_context_bit_for_bit(generator):
    trained = PSPConv2d(2, 3, 3, padding=1, kind="complex", seed=9, layer=1, num_tasks=3, generator=generator)
    loaded = PSPConv2d(2, 3, 3, padding=1, kind="complex", seed=9, layer=1, generator=generator)
    loaded.load_state_dict(trained.state_dict())
    x = torch.randn(2, 2, 5, 5, generator=generator)
    for t in range(3):
        assert trained.task_state(t) == {} and loaded.add_frozen_task(trained.task_state(t)) == t
        assert torch.equal(loaded.context(t), trained.context(t))
        trained.set_task(t), loaded.set_task(t)
        assert torch.equal(trained(x), loaded(x))


def test_gradients_reach_the_shared_weight_and_bias_never_the_context(generator):
    model = torch.nn.Sequential(PSPConv2d(1, 2, 3, kind="rotation", seed=2, layer=0, generator=generator),
                                torch.nn.ReLU(), torch.nn.Flatten(),
                                PSPLinear(2 * 4 * 4, 3, kind="rotation", seed=2, layer=1, generator=generator))
    assert modes.add_task(model) == 0 and modes.num_tasks(model) == 1
    model(torch.randn(2, 1, 6, 6, generator=generator)).sum().backward()
    conv = model[0]
    assert conv.task_parameters(0) == [] and [conv.weight, conv.bias] == list(conv.parameters())
    assert conv.weight.grad is not None and conv.bias.grad is not None and conv.weight.grad.abs().sum() > 0
    assert not conv.context(0).requires_grad and conv.context(0).grad is None


def test_a_conv_without_bias_trains_only_its_weight(generator):
    layer = PSPConv2d(2, 3, 3, bias=False, kind="binary", seed=0, num_tasks=1, generator=generator)
    assert layer.bias is None and list(layer.parameters()) == [layer.weight]
    assert list(layer.state_dict()) == ["weight"]
    x = torch.randn(1, 2, 4, 4, generator=generator)
    expected = F.conv2d(x, superposed_kernel(layer.weight, layer.context(0), "binary"))
    torch.testing.assert_close(layer(x), expected)


def test_bad_psp_convolutions_name_the_fix():
    with pytest.raises(ValueError, match="kernel_size must be >= 1; got 0. Give the side"):
        PSPConv2d(2, 3, 0, kind="binary", seed=0)
    with pytest.raises(ValueError, match="context kind must be one of .*Use rotation, complex or binary"):
        PSPConv2d(2, 3, 3, kind="spin", seed=0)
    with pytest.raises(ValueError, match="layer must be >= 0.*Number the network's PSP layers"):
        PSPConv2d(2, 3, 3, kind="binary", seed=0, layer=-1)
    layer = PSPConv2d(2, 3, 3, kind="binary", seed=0, num_tasks=2)
    with pytest.raises(ValueError, match="task_id 2 is out of range.*call add_task"):
        layer.set_task(2)
    with pytest.raises(ValueError, match="no state to start from.*Call add_task\\(\\) without init"):
        layer.add_task({"context": torch.ones(18)})
