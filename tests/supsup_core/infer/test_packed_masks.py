"""Tests of bit-packed task masks: products against the naive float computation, round trips, errors."""
import math
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hopfield_masks.patterns import pack_bits
from supsup_core.infer.packed_masks import (
    PackedMasks,
    candidate_ids,
    packed_column_counts,
    packed_inner_products,
)
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model


def _random_bits(seed: int, k: int, d: int, density: float = 0.5) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((k, d)) < density).astype(np.uint8))


@settings(derandomize=True, deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 100), d=st.integers(1, 200))
def test_inner_products_equal_the_naive_product(seed, k, d):
    # k spans both kernels: unpacking (k < 64) and the per-byte lookup table (k >= 64).
    bits = _random_bits(seed, k, d)
    vector = torch.from_numpy(np.random.default_rng(seed + 1).standard_normal(d)).float()
    expected = bits.double() @ vector.double()
    got = packed_inner_products(pack_bits(bits), vector)
    assert got.shape == (k,)
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-4)


@settings(derandomize=True, deadline=None, max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 70), d=st.integers(1, 200))
def test_column_counts_equal_the_naive_sum(seed, k, d):
    bits = _random_bits(seed, k, d, density=0.3)
    assert torch.equal(packed_column_counts(pack_bits(bits), d), bits.sum(0, dtype=torch.int32))


def test_column_counts_beyond_255_rows():
    # byte lanes of the counting kernel hold at most 255; more rows are counted block by block
    bits = _random_bits(7, 600, 45, density=0.9)
    assert torch.equal(packed_column_counts(pack_bits(bits), 45), bits.sum(0, dtype=torch.int32))


@pytest.mark.parametrize("k", [5, 100])  # both kernels
def test_products_over_a_row_subset(k):
    bits = _random_bits(3, k, 77)
    vector = torch.linspace(-1, 1, 77)
    rows = torch.tensor([k - 1, 0, 2])
    packed = pack_bits(bits)
    assert torch.allclose(packed_inner_products(packed, vector, rows), bits[rows].float() @ vector, atol=1e-5)
    assert torch.equal(packed_column_counts(packed, 77, rows), bits[rows].sum(0, dtype=torch.int32))


def test_inner_products_reject_a_vector_of_the_wrong_length():
    with pytest.raises(ValueError, match="vector must have"):
        packed_inner_products(pack_bits(_random_bits(0, 2, 16)), torch.zeros(30))


@pytest.fixture
def model(generator):
    config = ModelConfig(name="lenet", input_shape=(1, 4, 5), output_size=13, num_tasks=4, width=12)
    return build_model(config, generator)


def test_from_model_round_trips_every_task(model):
    packed = PackedMasks.from_model(model)
    assert packed.num_tasks == 4
    assert packed.names == tuple(modes.masked_layers(model))
    for task_id in range(4):
        for name, mask in modes.task_masks(model, task_id).items():
            assert torch.equal(packed.task_masks(task_id)[name], mask)
    unpacked = packed.unpack()
    for name, layer in modes.masked_layers(model).items():
        assert torch.equal(unpacked[name], layer.task_masks())


def test_memory_is_d_over_8_bytes_per_task(model):
    packed = PackedMasks.from_model(model)
    per_task = sum(math.ceil(math.prod(layer.mask_shape) / 8) for layer in modes.masked_layers(model).values())
    assert packed.nbytes == 4 * per_task


def test_mean_mask_equals_the_naive_mean_and_is_not_aliased(model):
    packed = PackedMasks.from_model(model)
    floats = packed.unpack()
    for candidates in ([0, 1, 2, 3], [2], [3, 1]):
        mean = packed.mean_mask(candidates)
        for name, stacked in floats.items():
            assert torch.allclose(mean[name], stacked[candidates].mean(0))
        mean[packed.names[0]].add_(100)  # callers may modify their copy (e.g. make it a leaf)
        assert packed.mean_mask(candidates)[packed.names[0]].max() <= 1


def test_inner_products_sum_over_layers(model):
    packed = PackedMasks.from_model(model)
    vectors = {name: torch.randn(shape, generator=torch.Generator().manual_seed(1)) for name, shape in packed.shapes.items()}
    expected = sum((floats.flatten(1) @ vectors[name].flatten()) for name, floats in packed.unpack().items())
    assert torch.allclose(packed.inner_products(vectors, [0, 1, 2, 3]), expected, atol=1e-5)
    assert torch.allclose(packed.inner_products(vectors, [3, 0]), expected[[3, 0]], atol=1e-5)


@pytest.mark.parametrize("density", [0.25, 0.5])
def test_random_masks_have_the_asked_density_and_zero_padding(density):
    packed = PackedMasks.random({"a": (64, 64), "b": (5, 3)}, 3, density=density, generator=torch.Generator().manual_seed(0))
    assert packed.num_tasks == 3
    assert abs(packed.unpack()["a"].mean().item() - density) < 0.02
    assert torch.equal(pack_bits(packed.unpack()["b"].flatten(1).to(torch.uint8)), packed.packed("b"))


def test_bad_layers_are_errors():
    good = pack_bits(_random_bits(0, 2, 20))
    with pytest.raises(ValueError, match="same, non-empty set of layers"):
        PackedMasks(packed={"a": good}, shapes={"b": (20,)})
    with pytest.raises(ValueError, match="must be uint8 of shape"):
        PackedMasks(packed={"a": good.float()}, shapes={"a": (20,)})
    with pytest.raises(ValueError, match="must be uint8 of shape"):
        PackedMasks(packed={"a": good}, shapes={"a": (40,)})
    with pytest.raises(ValueError, match="same number of tasks"):
        PackedMasks(packed={"a": good, "b": good[:1]}, shapes={"a": (20,), "b": (20,)})
    with pytest.raises(ValueError, match="no tasks to pack"):
        PackedMasks.from_task_masks([])


def test_bad_candidates_are_errors(model):
    packed = PackedMasks.from_model(model)
    with pytest.raises(ValueError, match="candidates is empty"):
        packed.mean_mask([])
    with pytest.raises(ValueError, match=r"task ids in 0\.\.3"):
        packed.mean_mask([0, 4])
    with pytest.raises(ValueError, match="must not repeat"):
        packed.inner_products({}, [1, 1])
    with pytest.raises(ValueError, match="out of range"):
        packed.task_masks(7)


def _rows_with_copies(seed: int, k: int, d: int, copies: list[int]) -> torch.Tensor:
    """(k, d) random bits whose rows at ``copies`` all hold one and the same mask."""
    bits = _random_bits(seed, k, d)
    bits[copies] = bits[copies[0]].clone()
    return bits


@pytest.mark.parametrize("k", [2, 5, 70, 130])  # both kernels (unpacking below 64 rows, the byte table from 64)
@pytest.mark.parametrize("d", [1, 7, 80, 1000, 4096, 20001])
def test_identical_rows_get_bitwise_identical_products(k, d):
    # Where a row sits (its position, its alignment, which BLAS block it falls in) must not change its sum.
    copies = sorted({0, 1, k // 2, k - 1})
    packed = pack_bits(_rows_with_copies(d + k, k, d, copies))
    vector = torch.from_numpy(np.random.default_rng(d).standard_normal(d)).float()
    products = packed_inner_products(packed, vector)
    assert len(set(products[copies].tolist())) == 1, products[copies].tolist()
    # ... nor which rows are selected, nor in which order
    reordered = packed_inner_products(packed, vector, torch.tensor(copies[::-1] + [k // 3]))
    assert torch.equal(reordered[: len(copies)], products[copies[::-1]])


@settings(derandomize=True, deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 100), d=st.integers(1, 3000), scale=st.integers(-30, 30))
def test_identical_rows_tie_exactly_and_products_stay_accurate(seed, k, d, scale):
    # Entries spanning many binades (the hard case for an exact sum), scaled anywhere in float32's range.
    rng = np.random.default_rng(seed)
    copies = sorted(rng.choice(k, size=2, replace=False).tolist())
    bits = _rows_with_copies(seed, k, d, copies)
    vector = torch.from_numpy(rng.standard_normal(d) * 10.0 ** rng.uniform(-6, 6, d) * 10.0**scale).float()
    got = packed_inner_products(pack_bits(bits), vector)
    assert got[copies[0]].item() == got[copies[1]].item()
    # As accurate as one float32 rounding of the exactly rounded sum, plus the fixed-point grid (2^-52 of Σ|g| per entry).
    values = vector.double().numpy()
    total = float(np.abs(values).sum())
    for i in range(k):
        exact = math.fsum(values[bits[i].numpy().astype(bool)])
        assert abs(got[i].item() - exact) <= abs(exact) * 2.0**-23 + d * total * 2.0**-52 + 1e-45


def test_inner_products_of_identical_tasks_tie_over_several_layers():
    shapes = {"a": (33, 7), "b": (5, 3, 3), "c": (1000,)}
    one = PackedMasks.random(shapes, 3, generator=torch.Generator().manual_seed(0))
    # task order 0, 1, 0, 2, 0: three copies of task 0 at positions 0, 2 and 4
    packed = PackedMasks(packed={n: one.packed(n)[[0, 1, 0, 2, 0]] for n in one.names}, shapes=shapes)
    vectors = {name: torch.randn(shape, generator=torch.Generator().manual_seed(2)) for name, shape in shapes.items()}
    products = packed.inner_products(vectors, [4, 3, 2, 1, 0])
    assert products[0].item() == products[2].item() == products[4].item()


@pytest.mark.parametrize("k", [3, 70])
def test_a_non_finite_vector_never_gives_finite_products(k):
    # no fixed-point grid exists for NaN or inf: they must show, not be rounded into finite numbers
    packed = pack_bits(_random_bits(0, k, 20))
    packed[0] = 255
    for bad in (float("nan"), float("inf")):
        vector = torch.ones(20)
        vector[3] = bad
        got = packed_inner_products(packed, vector)
        assert not torch.isfinite(got[0]) and not torch.isfinite(got).all()


def test_candidate_ids_keep_their_order():
    assert candidate_ids([3, 0, 2], 4).tolist() == [3, 0, 2]
    assert candidate_ids(torch.tensor([[1], [0]]), 2).tolist() == [1, 0]


def test_column_counts_refuse_a_big_endian_machine(monkeypatch):
    # the SWAR kernel's byte lanes are little-endian; checked where used, not by an import-time assert
    monkeypatch.setattr(sys, "byteorder", "big")
    with pytest.raises(RuntimeError, match="little-endian int64 words; this machine is big-endian"):
        packed_column_counts(torch.zeros(1, 2, dtype=torch.uint8), 16)

