"""Learning rules against naive numpy references, and incremental storing against storing all at once."""
import numpy as np
import pytest
import torch

from hopfield_masks import RULES, make_memory


def naive_hebbian(x, centre=0.0):
    y = x - centre
    w = y.T @ y / x.shape[1]
    np.fill_diagonal(w, 0.0)
    return w


def naive_storkey(x):
    """Storkey (1997) literally: w_ij += (x_i x_j - x_i h_ji - h_ij x_j)/d, h_ij = sum_{k != i, j} w_ik x_k."""
    d = x.shape[1]
    w = np.zeros((d, d))
    for p in x:
        local = np.array([[sum(w[i, k] * p[k] for k in range(d) if k not in (i, j)) for j in range(d)] for i in range(d)])
        new = w.copy()
        for i in range(d):
            for j in range(d):
                if i != j:
                    new[i, j] += (p[i] * p[j] - p[i] * local[j, i] - local[i, j] * p[j]) / d
        w = new
    return w


def naive_storkey_reference(x):
    d = x.shape[1]
    w = np.zeros((d, d))
    for p in x:
        h = w @ p
        w = w + (np.outer(p, p) - np.eye(d) - np.outer(p, h) - np.outer(h, p)) / d
    return w


def naive_pseudoinverse(x, zero_diagonal):
    w = np.linalg.pinv(x) @ x
    if zero_diagonal:
        np.fill_diagonal(w, 0.0)
    return w


def test_registry_names():
    assert set(RULES) == {"hebbian", "storkey", "storkey_reference", "pseudoinverse", "covariance", "modern"}
    assert all(cls.name == name for name, cls in RULES.items())


@pytest.mark.parametrize("rule, options, reference", [
    ("hebbian", {}, naive_hebbian),
    ("covariance", {"mean_activity": -0.5}, lambda x: naive_hebbian(x, -0.5)),
    ("storkey", {}, naive_storkey),
    ("storkey_reference", {}, naive_storkey_reference),
    ("pseudoinverse", {"zero_diagonal": True}, lambda x: naive_pseudoinverse(x, True)),
    ("pseudoinverse", {"zero_diagonal": False}, lambda x: naive_pseudoinverse(x, False)),
])
@pytest.mark.parametrize("backend", ["dense", "implicit"])
def test_rule_matches_naive_reference(patterns_of, rule, options, reference, backend):
    if backend not in RULES[rule].backends:
        pytest.skip(f"{rule} has no {backend} backend")
    x = patterns_of(1, 4, 9, 0.4)
    memory = make_memory(rule, 9, backend, dtype=torch.float64, **options).store(x.double())
    np.testing.assert_allclose(memory.weights().numpy(), reference(x.double().numpy()), atol=1e-10)


def test_covariance_takes_mean_from_first_batch_and_sets_threshold(patterns_of):
    x = patterns_of(2, 6, 50, 0.1)
    memory = make_memory("covariance", 50).store(x[:3]).store(x[3:])
    m = float(x[:3].double().mean())
    assert memory.learning_rule.mean_activity == pytest.approx(m)
    assert memory.threshold == pytest.approx(-m * (1 - m * m))
    np.testing.assert_allclose(memory.weights().numpy(), naive_hebbian(x.double().numpy(), m), atol=1e-6)
    assert make_memory("covariance", 50, threshold=0.0).store(x).threshold == 0.0


@pytest.mark.parametrize("rule", ["hebbian", "storkey", "storkey_reference", "pseudoinverse"])
@pytest.mark.parametrize("backend", ["dense", "implicit"])
def test_incremental_equals_all_at_once(patterns_of, rule, backend):
    if backend not in RULES[rule].backends:
        pytest.skip(f"{rule} has no {backend} backend")
    x = patterns_of(3, 7, 40)
    whole = make_memory(rule, 40, backend).store(x)
    pieces = make_memory(rule, 40, backend)
    for start, stop in [(0, 1), (1, 4), (4, 7)]:
        pieces.store(x[start:stop])
    torch.testing.assert_close(pieces.weights(), whole.weights(), atol=1e-5, rtol=1e-5)


def test_pseudoinverse_skips_dependent_patterns(patterns_of):
    x = patterns_of(4, 3, 16)
    dependent = -x[1:2]  # in the span of the stored patterns
    for backend in ("dense", "implicit"):
        memory = make_memory("pseudoinverse", 16, backend).store(x)
        before = memory.weights()
        memory.store(dependent)
        torch.testing.assert_close(memory.weights(), before, atol=1e-5, rtol=0)
        assert memory.count == 4
