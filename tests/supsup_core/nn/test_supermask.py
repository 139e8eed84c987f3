"""Supermask functions: top-k and threshold masks, the straight-through gradient, inits."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from supsup_core.nn.supermask import (
    MaskConfig,
    TopKCut,
    binary_mask,
    compute_mask,
    init_scores_,
    signed_constant_,
    threshold_mask,
    topk_mask,
)


@settings(derandomize=True, deadline=None, max_examples=30)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 300), density=st.floats(0.05, 1.0))
def test_topk_keeps_largest_magnitudes_like_numpy_sort(seed, n, density):
    scores = torch.from_numpy(np.random.default_rng(seed).standard_normal(n)).float()
    mask = topk_mask(scores, density)
    n_keep = max(1, int(round(density * n)))
    expected = np.zeros(n)
    expected[np.argsort(-np.abs(scores.numpy()), kind="stable")[:n_keep]] = 1
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_threshold_mask_is_scores_at_least_zero():
    scores = torch.tensor([-1.0, 0.0, 2.0, -0.0, -1e-9])
    assert threshold_mask(scores).tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("config", [MaskConfig(kind="topk", density=0.3), MaskConfig(kind="threshold")])
def test_straight_through_gradient_and_binary_mask_agree(config):
    scores = torch.randn(7, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    mask = compute_mask(scores, config)
    upstream = torch.randn(7, 5)
    mask.backward(upstream)
    torch.testing.assert_close(scores.grad, upstream)
    assert torch.equal(binary_mask(scores.detach(), config), mask)
    out = torch.full((7, 5), 0.5)
    assert binary_mask(scores.detach(), config, out=out) is out and torch.equal(out, mask)


def test_signed_constant_values_and_fan_in(generator):
    weight = signed_constant_(torch.empty(64, 3, 5, 5), generator=generator)
    std = math.sqrt(2.0 / 75)
    assert torch.allclose(weight.abs(), torch.full_like(weight, std))
    assert 0.4 < (weight > 0).float().mean() < 0.6


def test_init_scores_kaiming_bound_and_zeros(generator):
    scores = init_scores_(torch.empty(100, 400), "kaiming_uniform", generator=generator)
    assert scores.abs().max() <= 1 / math.sqrt(400) and scores.std() > 0
    assert init_scores_(torch.ones(10), "zeros").abs().sum() == 0


@pytest.mark.parametrize("kwargs, match", [({"kind": "magic"}, "mask kind"), ({"density": 0.0}, "density"),
                                           ({"density": 1.5}, "density"), ({"score_init": "normal"}, "score_init"),
                                           ({"density": float("nan")}, "density must be a finite number; got nan")])
def test_mask_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskConfig(**kwargs)


def test_topk_masks_refuse_zero_initial_scores():
    from supsup_core.nn.supermask import MaskConfig

    with pytest.raises(ValueError, match="cannot start from zero scores"):
        MaskConfig(kind="topk", score_init="zeros")


@settings(derandomize=True, deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 5000), density=st.floats(0.01, 0.99),
       step=st.sampled_from([0.0, 1e-6, 1e-3, 1e-1, 3.0]), levels=st.sampled_from([None, 7, 64]))
def test_topk_with_a_remembered_cut_equals_topk_from_scratch(seed, n, density, step, levels):
    # a training-like sequence: scores drift by `step` per call; `levels` rounds them to force ties
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    cut = TopKCut()
    for _ in range(6):
        values = torch.from_numpy(np.round(scores * levels) / levels if levels else scores).float()
        assert torch.equal(topk_mask(values, density, cut), topk_mask(values, density))
        assert torch.equal(binary_mask(values, MaskConfig(kind="topk", density=density), cut=cut),
                           binary_mask(values, MaskConfig(kind="topk", density=density)))
        scores = scores + step * rng.normal(size=n)


def test_a_remembered_cut_narrows_the_search_to_a_band():
    scores = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    cut = TopKCut()
    topk_mask(scores, 0.5, cut)  # first call: from scratch
    assert cut.value == scores.abs().kthvalue(50_000).values and cut.width == 0.0
    topk_mask(scores + 1e-4, 0.5, cut)
    assert 0.0 < cut.width < 0.01  # found in a band around the old cut
