"""Masks <-> patterns, layouts and bit packing: round trips, references and errors."""
import json

import numpy as np
import pytest
import torch

from hopfield_masks import (
    MaskLayout,
    masks_to_patterns,
    pack_bits,
    patterns_to_masks,
    unpack_bits,
)


def test_masks_patterns_round_trip(rng):
    masks = torch.from_numpy(rng.integers(0, 2, (3, 17))).to(torch.uint8)
    patterns = masks_to_patterns(masks)
    assert patterns.dtype == torch.float32
    assert set(patterns.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(patterns_to_masks(patterns), masks)
    assert torch.equal(masks_to_patterns(masks.bool()), patterns)


@pytest.mark.parametrize("bad, found", [(0.37, "0.37"), (float("nan"), "NaN"), (2.0, "2")])
def test_masks_must_be_binary(bad, found):
    masks = torch.zeros(10)
    masks[4] = bad
    with pytest.raises(ValueError, match=f"masks must hold only 0 and 1; found {found} at flat index 4. Threshold"):
        masks_to_patterns(masks)


def test_patterns_must_be_plus_minus_one():
    with pytest.raises(ValueError, match="patterns must hold only -1 and \\+1; found 0 at flat index 0"):
        patterns_to_masks(torch.zeros(4))
    with pytest.raises(ValueError, match="shape \\(d,\\) or \\(n, d\\)"):
        patterns_to_masks(torch.ones(2, 2, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        masks_to_patterns(np.ones(3))


@pytest.mark.parametrize("dim", [1, 7, 8, 9, 64, 101])
def test_pack_bits_matches_numpy_and_round_trips(rng, dim):
    bits = rng.integers(0, 2, (4, dim)).astype(np.uint8)
    packed = pack_bits(torch.from_numpy(bits))
    assert packed.shape == (4, (dim + 7) // 8)
    assert np.array_equal(packed.numpy(), np.packbits(bits, axis=-1, bitorder="big"))
    assert np.array_equal(unpack_bits(packed, dim).numpy(), bits)


def test_unpack_bits_checks_width():
    with pytest.raises(ValueError, match="ceil\\(dim / 8\\) = 2"):
        unpack_bits(torch.zeros(3, 1, dtype=torch.uint8), 9)
    with pytest.raises(ValueError, match="bits must hold only 0 and 1"):
        pack_bits(torch.full((3,), 3))


def test_layout_flatten_unflatten_round_trip(rng):
    layout = MaskLayout(("fc1", "conv"), ((3,), (2, 2, 2)))
    assert layout.dim == 11 and layout.sizes == (3, 8)
    masks = {"fc1": torch.from_numpy(rng.integers(0, 2, (5, 3))), "conv": torch.from_numpy(rng.integers(0, 2, (5, 2, 2, 2)))}
    flat = layout.flatten(masks)
    assert flat.shape == (5, 11)
    assert torch.equal(flat[:, :3], masks["fc1"])
    back = layout.unflatten(flat)
    assert all(torch.equal(back[k], masks[k]) for k in masks)
    single = layout.flatten({k: v[0] for k, v in masks.items()})
    assert torch.equal(single, flat[0])
    assert MaskLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    assert MaskLayout.from_masks({k: v[0] for k, v in masks.items()}) == layout


def test_layout_errors():
    layout = MaskLayout(("a", "b"), ((2,), (3,)))
    with pytest.raises(ValueError, match="missing layers \\['b'\\], unexpected layers \\['c'\\]"):
        layout.flatten({"a": torch.ones(2), "c": torch.ones(3)})
    with pytest.raises(ValueError, match="mask 'b' must end in shape \\(3,\\)"):
        layout.flatten({"a": torch.ones(2), "b": torch.ones(4)})
    with pytest.raises(ValueError, match="batch shape"):
        layout.flatten({"a": torch.ones(2, 2), "b": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="5 units in its last dimension"):
        layout.unflatten(torch.ones(6))
    with pytest.raises(ValueError, match="unique layer name"):
        MaskLayout(("a", "a"), ((1,), (1,)))
    with pytest.raises(ValueError, match="every size must be >= 1"):
        MaskLayout(("a",), ((0,),))
    with pytest.raises(ValueError, match="exactly the keys"):
        MaskLayout.from_dict({"names": ["a"]})
