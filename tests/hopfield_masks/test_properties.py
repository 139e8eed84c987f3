"""Properties that must always hold, drawn with hypothesis (seeds and sizes; patterns built with numpy)."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield_masks import make_memory
from tests.hopfield_masks.conftest import MARGIN, random_patterns, sync_margins
from tests.hopfield_masks.test_memory import EVERY

FAST = settings(derandomize=True, deadline=None, max_examples=10)
seeds = st.integers(0, 2**31 - 1)
dims = st.integers(8, 40)
ZERO_DIAGONAL = [("hebbian", {}), ("storkey", {}), ("covariance", {}), ("pseudoinverse", {"zero_diagonal": True})]
BOTH_BACKENDS = [("hebbian", {}), ("storkey_reference", {}), ("covariance", {}), ("pseudoinverse", {}),
                 ("pseudoinverse", {"zero_diagonal": False})]



@FAST
@given(seed=seeds, dim=dims, count=st.integers(1, 6), which=st.sampled_from(ZERO_DIAGONAL),
       density=st.sampled_from([0.5, 0.2]))
def test_psi_is_symmetric_with_zero_diagonal(seed, dim, count, which, density):
    rule, options = which
    psi = make_memory(rule, dim, **options).store(random_patterns(seed, count, dim, density)).weights()
    assert torch.equal(psi, psi.T) or torch.allclose(psi, psi.T, atol=1e-6)
    assert torch.all(psi.diagonal() == 0)


@FAST
@given(seed=seeds, dim=dims, count=st.integers(1, 6), which=st.sampled_from(BOTH_BACKENDS))
def test_implicit_equals_dense(seed, dim, count, which):
    rule, options = which
    x = random_patterns(seed, count, dim)
    dense = make_memory(rule, dim, "dense", **options).store(x)
    implicit = make_memory(rule, dim, "implicit", **options).store(x)
    states = random_patterns(seed + 1, 3, dim)
    torch.testing.assert_close(implicit.field(states), dense.field(states), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(implicit.energy(states), dense.energy(states), atol=1e-3, rtol=1e-4)


@FAST
@given(seed=seeds, dim=dims, count=st.integers(1, 6), which=st.sampled_from(EVERY))
def test_every_asynchronous_flip_lowers_the_energy(seed, dim, count, which):
    rule, backend = which
    memory = make_memory(rule, dim, backend).store(random_patterns(seed, count, dim))
    probes = random_patterns(seed + 1, 4, dim)
    energies = [memory.energy(probes)]

    def check(unit, flipped, states):
        after = memory.energy(states)
        assert torch.all(after[flipped] < energies[-1][flipped])
        assert torch.equal(after[~flipped], energies[-1][~flipped])
        energies.append(after)

    result = memory.recall(probes, mode="async", seed=seed, max_steps=200, on_flip=check)
    assert result.converged.all() and not result.cycled.any()


@FAST
@given(seed=seeds, dim=dims, count=st.integers(1, 8), which=st.sampled_from(ZERO_DIAGONAL + BOTH_BACKENDS))
def test_synchronous_recall_ends_in_fixed_point_or_two_cycle(seed, dim, count, which):
    rule, options = which
    memory = make_memory(rule, dim, **options).store(random_patterns(seed, count, dim))
    result = memory.recall(random_patterns(seed + 1, 5, dim), max_steps=10_000)
    assert torch.all(result.converged ^ result.cycled)
    fixed = memory.is_fixed_point(result.states)
    # recall decided on a shrinking subset of the batch, is_fixed_point on the whole batch: the two products
    # round differently, so they must agree only where the end state's fields are clear of 0
    clear = sync_margins(memory, result.states, max_steps=1) > MARGIN
    assert torch.equal(fixed[clear], result.converged[clear])


@FAST
@given(seed=seeds, dim=dims, count=st.integers(1, 8),
       which=st.sampled_from([("hebbian", "dense"), ("storkey", "dense"), ("storkey_reference", "implicit"),
                              ("pseudoinverse", "dense"), ("pseudoinverse", "implicit")]))
def test_negation_of_a_fixed_point_is_a_fixed_point(seed, dim, count, which):
    rule, backend = which  # rules without a threshold: E(-s) = E(s)
    memory = make_memory(rule, dim, backend).store(random_patterns(seed, count, dim))
    states = torch.cat([memory.recall(random_patterns(seed + 2, 4, dim), max_steps=500).states,
                        random_patterns(seed, count, dim)])
    fixed = memory.is_fixed_point(states)
    assert torch.all(memory.is_fixed_point(-states)[fixed])


@FAST
@given(seed=seeds, dim=st.integers(8, 48), fraction=st.floats(0.05, 0.6), backend=st.sampled_from(["dense", "implicit"]),
       zero_diagonal=st.booleans())
def test_pseudoinverse_stores_any_full_rank_set(seed, dim, fraction, backend, zero_diagonal):
    count = max(1, int(fraction * dim))
    x = random_patterns(seed, count, dim)
    if np.linalg.matrix_rank(x.numpy()) < count:
        return  # not a full-rank set
    memory = make_memory("pseudoinverse", dim, backend, zero_diagonal=zero_diagonal).store(x)
    assert memory.is_fixed_point(x).all()


@FAST
@given(seed=seeds, dim=dims, count=st.integers(2, 8), data=st.data(), rule=st.sampled_from(["storkey", "storkey_reference"]))
def test_incremental_storkey_equals_storing_all_at_once(seed, dim, count, data, rule):
    x = random_patterns(seed, count, dim)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, count - 1), max_size=3))))
    incremental = make_memory(rule, dim)
    for start, stop in zip([0, *cuts], [*cuts, count]):
        incremental.store(x[start:stop])
    whole = make_memory(rule, dim).store(x)
    torch.testing.assert_close(incremental.weights(), whole.weights(), atol=1e-6, rtol=1e-6)
