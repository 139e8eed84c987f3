"""Masked layers: fused linear path against the reference, conv and BatchNorm masks, the three modes, freezing."""
import pytest
import torch
import torch.nn.functional as F

from supsup_core.nn import modes
from supsup_core.nn.layers import (
    FixedLinear,
    MaskedBatchNorm,
    MaskedConv2d,
    MaskedLinear,
)
from supsup_core.nn.supermask import MaskConfig, compute_mask

CONFIGS = [MaskConfig(kind="topk", density=0.4), MaskConfig(kind="threshold")]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("input_grad", [False, True])
def test_fused_linear_matches_reference_forward_and_gradients(config, input_grad, generator):
    layer = MaskedLinear(6, 5, num_tasks=2, mask_config=config, generator=generator)
    layer.set_task(1)
    x = torch.randn(4, 3, 6, requires_grad=input_grad)
    upstream = torch.randn(4, 3, 5)
    layer(x).backward(upstream)
    fused_scores, fused_x = layer.task_scores(1).grad.clone(), None if x.grad is None else x.grad.clone()
    scores = layer.task_scores(1).detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(input_grad)
    F.linear(x_ref, layer.weight * compute_mask(scores, config)).backward(upstream)
    torch.testing.assert_close(fused_scores, scores.grad)
    assert layer.task_scores(0).grad is None  # only the current task's scores get a gradient
    if input_grad:
        torch.testing.assert_close(fused_x, x_ref.grad)
    else:
        assert fused_x is None


def test_weights_are_fixed_buffers_and_only_scores_are_parameters(generator):
    layer = MaskedLinear(4, 3, num_tasks=2, generator=generator)
    assert [name for name, _ in layer.named_parameters()] == ["scores.0", "scores.1"]
    assert "weight" in dict(layer.named_buffers())


def test_conv_mask_matches_masked_convolution(generator):
    layer = MaskedConv2d(2, 3, 3, padding=1, num_tasks=1, generator=generator)
    x = torch.randn(2, 2, 5, 5)
    expected = F.conv2d(x, layer.weight * layer.task_mask(0), padding=1)
    torch.testing.assert_close(layer(x), expected)


def test_batchnorm_neuron_mask_zeroes_masked_features(generator):
    bn = MaskedBatchNorm(4, num_tasks=1)
    with torch.no_grad():
        bn.task_scores(0).copy_(torch.tensor([1.0, -1.0, 0.0, -2.0]))
    out = bn(torch.randn(16, 4))
    assert out[:, 1].abs().sum() == 0 and out[:, 3].abs().sum() == 0
    torch.testing.assert_close(out[:, 0].mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert list(bn.parameters()) == [bn.task_scores(0)]  # no affine parameters, no running stats
    assert [name for name, _ in bn.named_buffers() if name != "_device_probe"] == []  # no running statistics


def test_batchnorm_zero_init_starts_with_every_neuron_on():
    assert MaskedBatchNorm(5, num_tasks=1).task_mask(0).sum() == 5


def test_superposition_is_weighted_sum_of_task_masks(generator):
    layer = MaskedLinear(5, 4, num_tasks=3, generator=generator)
    alphas = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    layer.set_superposition(alphas)
    x = torch.randn(2, 5)
    expected = F.linear(x, layer.weight * sum(a * layer.task_mask(t) for t, a in enumerate(alphas.detach())))
    out = layer(x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert alphas.grad is not None and alphas.grad.shape == (3,)


def test_given_mask_mode_is_differentiable(generator):
    layer = MaskedLinear(5, 4, num_tasks=1, generator=generator)
    mask = torch.ones(4, 5, requires_grad=True)
    layer.set_mask(mask)
    layer(torch.randn(3, 5)).sum().backward()
    assert mask.grad is not None and layer.mode == "mask"


def test_freeze_keeps_mask_and_drops_scores(generator):
    layer = MaskedLinear(5, 4, num_tasks=2, generator=generator)
    x = torch.randn(3, 5)
    layer.set_task(0)
    before = layer(x).detach()
    mask = layer.task_mask(0)
    layer.freeze_task(0)
    assert "0" not in layer.scores and torch.equal(layer.task_mask(0), mask)
    torch.testing.assert_close(layer(x), before)
    with pytest.raises(ValueError, match="frozen"):
        layer.task_scores(0)
    assert layer.add_frozen_task({"mask": torch.zeros(4, 5)}) == 2 and layer.task_mask(2).sum() == 0


def test_model_level_modes(generator):
    model = torch.nn.Sequential(MaskedLinear(4, 4, num_tasks=2, generator=generator), MaskedLinear(4, 2, num_tasks=2, generator=generator))
    assert modes.num_tasks(model) == 2 and modes.add_task(model, generator=generator) == 2
    modes.set_task(model, 2)
    assert all(layer.mode == "task" for layer in modes.masked_layers(model).values())
    masks = modes.task_masks(model, 1)
    modes.set_masks(model, masks)
    modes.set_task(model, 1)
    expected = model(torch.ones(1, 4))
    modes.set_masks(model, masks)
    torch.testing.assert_close(model(torch.ones(1, 4)), expected)
    with pytest.raises(ValueError, match="missing"):
        modes.set_masks(model, {"0": masks["0"]})


def test_layer_errors_name_the_problem(generator):
    layer = MaskedLinear(3, 2, num_tasks=1, generator=generator)
    with pytest.raises(ValueError, match="out of range"):
        layer.set_task(5)
    with pytest.raises(ValueError, match="alphas must have shape"):
        layer.set_superposition(torch.ones(3))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer.set_mask(torch.ones(3, 2))
    with pytest.raises(ValueError, match="init_scores must have shape"):
        layer.add_task({"scores": torch.zeros(5)})
    with pytest.raises(ValueError, match=r"starts a task from \{'scores': tensor\}; got keys \['mask'\]"):
        layer.add_task({"mask": torch.zeros(4, 5)})
    with pytest.raises(ValueError, match=r"frozen task is \{'mask': tensor\}; got keys \['scores'\]"):
        layer.add_frozen_task({"scores": torch.zeros(4, 5)})


def test_fixed_linear_is_signed_constant_without_parameters(generator):
    layer = FixedLinear(8, 3, generator=generator)
    assert list(layer.parameters()) == [] and torch.allclose(layer.weight.abs(), torch.full((3, 8), 0.5))


def test_tasks_added_after_moving_a_neuron_mask_layer_live_on_its_device():
    # MaskedBatchNorm has no weight buffer: its device must still follow .to() while it holds no task
    from supsup_core.nn.layers import MaskedBatchNorm

    layer = MaskedBatchNorm(4, num_tasks=0).to("meta")
    layer.add_task()
    layer.add_frozen_task({"mask": torch.ones(4)})
    assert layer.task_scores(0).device.type == "meta"
    assert layer.frozen_mask_1.device.type == "meta"


def test_superposition_follows_scores_that_changed_since_the_last_call():
    from supsup_core.nn.layers import MaskedLinear
    from supsup_core.nn.supermask import MaskConfig

    layer = MaskedLinear(6, 3, num_tasks=2, mask_config=MaskConfig(kind="threshold"))
    alphas = torch.tensor([1.0, 0.0])
    layer.set_superposition(alphas)
    before = layer.current_mask().clone()
    with torch.no_grad():
        layer.task_scores(0).neg_()
    layer.set_superposition(alphas)
    assert torch.equal(layer.current_mask(), 1.0 - before)


def test_adding_a_frozen_task_of_the_wrong_shape_changes_nothing():
    from supsup_core.nn.layers import MaskedBatchNorm

    layer = MaskedBatchNorm(4, num_tasks=1)
    with pytest.raises(ValueError, match="shape"):
        layer.add_frozen_task({"mask": torch.ones(5)})
    assert layer.num_tasks == 1
