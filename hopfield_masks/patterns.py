"""Binary masks as ±1 patterns: conversion, named-layer layouts, and bit packing."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from hopfield_masks.checks import (
    check_layer_shape,
    check_layout_names,
    check_masks,
    check_patterns,
    check_positive_int,
    check_tensor,
)

__all__ = ["MaskLayout", "masks_to_patterns", "pack_bits", "patterns_to_masks", "unpack_bits"]

# Bit order of packed patterns: unit j lives in byte j // 8 at bit 7 - j % 8 (most significant bit first),
# the same order as numpy.packbits(..., bitorder="big"). The last byte is padded with zero bits.
_BIT_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)
_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def masks_to_patterns(masks: Tensor, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Map {0,1} masks to ±1 patterns (0 -> -1, 1 -> +1).

    Parameters
    ----------
    masks : Tensor of shape (..., d)
        Values 0 and 1 only (bool, integer or float).
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    Tensor of shape (..., d), values -1 and +1.
    """
    masks = check_masks(masks)
    return masks.to(dtype) * 2 - 1


def patterns_to_masks(patterns: Tensor) -> Tensor:
    """Map ±1 patterns back to {0,1} masks (uint8); the inverse of :func:`masks_to_patterns`.

    Parameters
    ----------
    patterns : Tensor of shape (d,) or (n, d), values -1 and +1.

    Returns
    -------
    Tensor of the same shape, dtype uint8.
    """
    check_patterns(patterns)
    return (patterns > 0).to(torch.uint8)


def pack_bits(bits: Tensor) -> Tensor:
    """Pack {0,1} values along the last axis into bytes, most significant bit first.

    Parameters
    ----------
    bits : Tensor of shape (..., d), values 0 and 1.

    Returns
    -------
    Tensor of shape (..., ceil(d / 8)), dtype uint8; unit j is bit ``7 - j % 8`` of byte ``j // 8``.
    """
    bits = check_masks(bits, "bits").to(torch.uint8)
    d = bits.shape[-1]
    pad = (-d) % 8
    if pad:
        bits = torch.nn.functional.pad(bits, (0, pad))
    grouped = bits.reshape(*bits.shape[:-1], -1, 8)
    return (grouped * _BIT_WEIGHTS.to(bits.device)).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, dim: int) -> Tensor:
    """Unpack bytes made by :func:`pack_bits` into {0,1} values.

    Parameters
    ----------
    packed : Tensor of shape (..., ceil(dim / 8)), dtype uint8.
    dim : int
        Number of units to return (the padding bits are dropped).

    Returns
    -------
    Tensor of shape (..., dim), dtype uint8.
    """
    packed = check_tensor(packed, "packed")
    check_positive_int(dim, "dim")
    if packed.dtype != torch.uint8 or packed.shape[-1] != math.ceil(dim / 8):
        raise ValueError(
            f"packed must be uint8 with last dimension ceil(dim / 8) = {math.ceil(dim / 8)}; got "
            f"{packed.dtype} of shape {tuple(packed.shape)}. Pack with pack_bits and pass the same dim."
        )
    bits = (packed.unsqueeze(-1) >> _BIT_SHIFTS.to(packed.device)) & 1
    return bits.reshape(*packed.shape[:-1], packed.shape[-1] * 8)[..., :dim]


@dataclass(frozen=True)
class MaskLayout:
    """Names and shapes of several layer masks laid end to end in one pattern space of ``dim`` units.

    Layers are flattened in row-major order and concatenated in the order of ``names``.

    Parameters
    ----------
    names : tuple of str
        Layer names, unique.
    shapes : tuple of tuple of int
        Shape of each layer's mask, same order as ``names``.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "shapes", tuple(tuple(int(n) for n in s) for s in self.shapes))
        if len(self.names) == 0 or len(self.names) != len(self.shapes) or len(set(self.names)) != len(self.names):
            raise ValueError(
                f"a MaskLayout needs one shape per unique layer name and at least one layer; got names "
                f"{list(self.names)} and {len(self.shapes)} shapes."
            )
        for name, shape in zip(self.names, self.shapes):
            if any(n < 1 for n in shape):
                raise ValueError(f"layer {name!r} has shape {shape}; every size must be >= 1.")

    @classmethod
    def from_masks(cls, masks: Mapping[str, Tensor]) -> "MaskLayout":
        """Layout of a dict of single (unbatched) layer masks, in the dict's order."""
        return cls(tuple(masks), tuple(tuple(m.shape) for m in masks.values()))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of units of each layer."""
        return tuple(math.prod(s) for s in self.shapes)

    @property
    def dim(self) -> int:
        """Total number of units d."""
        return sum(self.sizes)

    def flatten(self, masks: Mapping[str, Tensor]) -> Tensor:
        """Concatenate layer masks into one tensor.

        Parameters
        ----------
        masks : dict of str to Tensor of shape (..., *shape)
            One entry per layer; leading batch dimensions must agree across layers.

        Returns
        -------
        Tensor of shape (..., dim).
        """
        check_layout_names(masks, self.names)
        batch = None
        parts = []
        for name, shape in zip(self.names, self.shapes):
            mask = check_tensor(masks[name], f"masks[{name!r}]")
            check_layer_shape(mask.shape, name, shape)
            lead = tuple(mask.shape[: mask.ndim - len(shape)])
            if batch is not None and lead != batch:
                raise ValueError(
                    f"mask {name!r} has batch shape {lead}, others have {batch}; stack the same number of masks per layer."
                )
            batch = lead
            parts.append(mask.reshape(*lead, -1))
        return torch.cat(parts, dim=-1)

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a tensor of shape (..., dim) into layer tensors of shape (..., *shape)."""
        flat = check_tensor(flat, "flat")
        if flat.shape[-1] != self.dim:
            raise ValueError(
                f"flat must have {self.dim} units in its last dimension (the layout's dim); got shape "
                f"{tuple(flat.shape)}. Use the layout the memory was made with (memory.layout)."
            )
        pieces = torch.split(flat, self.sizes, dim=-1)
        return {name: p.reshape(*flat.shape[:-1], *shape) for name, shape, p in zip(self.names, self.shapes, pieces)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"names": [...], "shapes": [[...], ...]}``."""
        return {"names": list(self.names), "shapes": [list(s) for s in self.shapes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MaskLayout":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or set(data) != {"names", "shapes"}:
            raise ValueError(f"a layout dict needs exactly the keys 'names' and 'shapes'; got {data!r}.")
        return cls(tuple(data["names"]), tuple(tuple(s) for s in data["shapes"]))
