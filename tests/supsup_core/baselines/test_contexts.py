"""PSP contexts: rotation orthogonal, complex unit-modulus, binary ±1; fixed by (seed, task); powers."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from supsup_core.baselines.contexts import CONTEXT_KINDS, context_nbytes, task_context

SEEDS = st.integers(0, 2**31 - 1)


@settings(derandomize=True, deadline=None, max_examples=25)
@given(seed=SEEDS, n=st.integers(1, 64), task_id=st.integers(0, 20))
def test_rotation_contexts_are_orthogonal(seed, n, task_id):
    c = task_context("rotation", n, seed=seed, task_id=task_id).double()
    torch.testing.assert_close(c @ c.T, torch.eye(n, dtype=torch.float64), atol=1e-5, rtol=0)


@settings(derandomize=True, deadline=None, max_examples=25)
@given(seed=SEEDS, n=st.integers(1, 256), task_id=st.integers(0, 20))
def test_complex_contexts_have_unit_modulus_and_binary_ones_are_signs(seed, n, task_id):
    c = task_context("complex", n, seed=seed, task_id=task_id)
    assert c.dtype == torch.complex64
    torch.testing.assert_close(c.abs(), torch.ones(n), atol=1e-6, rtol=0)
    b = task_context("binary", n, seed=seed, task_id=task_id)
    assert set(b.unique().tolist()) <= {-1.0, 1.0}


def test_rotation_columns_follow_haar_measure_not_qr_signs():
    # without the sign fix, QR's convention makes diag(Q R-part) one-sided; Haar matrices have diagonal mean ~0
    diagonals = torch.stack([torch.diagonal(task_context("rotation", 8, seed=s, task_id=0)) for s in range(400)])
    assert diagonals.mean().abs() < 0.05  # standard error of the mean: 1/sqrt(8 * 400 * 8) = 0.006


@pytest.mark.parametrize("kind", sorted(CONTEXT_KINDS))
def test_a_context_is_fixed_by_seed_and_task_and_differs_between_tasks(kind):
    a = task_context(kind, 32, seed=5, task_id=3)
    assert torch.equal(a, task_context(kind, 32, seed=5, task_id=3))
    assert not torch.equal(a, task_context(kind, 32, seed=5, task_id=4))
    assert not torch.equal(a, task_context(kind, 32, seed=6, task_id=3))
    assert not torch.equal(a, task_context(kind, 32, seed=5, task_id=3, layer=1))  # each layer its own


@pytest.mark.parametrize("kind", ["rotation", "complex"])
def test_powers_are_powers_of_the_first_context(kind):
    base = task_context(kind, 16, seed=1, task_id=0, powers=True)
    third = task_context(kind, 16, seed=1, task_id=2, powers=True)
    expected = base.double() @ base.double() @ base.double() if kind == "rotation" else base * base * base
    torch.testing.assert_close(third.to(expected.dtype), expected, atol=1e-5, rtol=0)
    assert context_nbytes(kind, 16, powers=True) == 0


def test_context_sizes_per_task():
    assert context_nbytes("rotation", 100) == 40_000 and context_nbytes("complex", 100) == 800
    assert context_nbytes("binary", 100) == 400


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "spin", "n": 4}, "context kind must be one of"),
    ({"kind": "binary", "n": 4, "powers": True}, "C² = I"),
    ({"kind": "rotation", "n": 0}, "n must be >= 1"),
])
def test_bad_contexts_name_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        task_context(seed=0, task_id=0, **kwargs)
