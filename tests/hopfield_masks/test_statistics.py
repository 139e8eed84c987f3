"""Statistical claims, only at loads well inside known bounds, plus negative controls that must fail."""
import pytest

from hopfield_masks import CapacityConfig, measure_capacity


@pytest.mark.parametrize("dim", [128, 256])
def test_storkey_exact_at_load_0_1_with_10_percent_noise(dim):
    point = measure_capacity(CapacityConfig("storkey", dim, (0.1,), noise=0.1, trials=3, seed=1)).points[0]
    assert point.exact_recall_fraction >= 0.99


@pytest.mark.parametrize("backend", ["dense", "implicit"])
def test_pseudoinverse_exact_at_load_0_2_with_10_percent_noise(backend):
    point = measure_capacity(CapacityConfig("pseudoinverse", 128, (0.2,), noise=0.1, trials=3, seed=2,
                                            backend=backend)).points[0]
    assert point.fixed_point_fraction == 1.0 and point.exact_recall_fraction >= 0.99


def test_covariance_kwta_exact_for_sparse_patterns():
    config = CapacityConfig("covariance", 256, (0.05,), density=0.1, noise=0.05, trials=3, seed=3, kwta=26)
    assert measure_capacity(config).points[0].exact_recall_fraction >= 0.95


def test_negative_control_hebbian_fails_on_sparse_patterns():
    config = CapacityConfig("hebbian", 256, (8 / 256,), density=0.1, noise=0.0, trials=3, seed=4)
    assert measure_capacity(config).points[0].fixed_point_fraction < 0.5


def test_negative_control_hebbian_fails_far_above_capacity():
    point = measure_capacity(CapacityConfig("hebbian", 128, (0.5,), noise=0.1, seed=5)).points[0]
    assert point.exact_recall_fraction < 0.1
