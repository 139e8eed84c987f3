"""Bit-packed ±1 patterns with products computed chunk by chunk, never unpacking all K×d at once."""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import Tensor

from hopfield_masks.patterns import pack_bits, unpack_bits

# Floats unpacked at a time (16 MB in float32): bounds the working memory of every product.
_CHUNK_FLOATS = 1 << 22
# Row b holds the ±1 values of the 8 units packed in byte b (most significant bit first): unpacking is one gather.
_BYTE_SIGNS = ((torch.arange(256)[:, None] >> torch.arange(7, -1, -1)) & 1).float() * 2 - 1


def packed_scratch_nbytes(dim: int, count: int) -> int:
    """Most bytes a product over ``count`` packed patterns unpacks at a time (one float64 chunk)."""
    return min(count * dim, _CHUNK_FLOATS) * 8


class PackedPatterns:
    """K stored ±1 patterns of ``dim`` units, kept as uint8 rows of ceil(dim / 8) bytes.

    Parameters
    ----------
    dim : int
    device : torch.device
    packed : Tensor of shape (K, ceil(dim / 8)), uint8, optional
        Initial content (e.g. read from a store file).
    """

    def __init__(self, dim: int, device: torch.device, packed: Tensor | None = None) -> None:
        self.dim = dim
        width = math.ceil(dim / 8)
        self.packed = torch.zeros(0, width, dtype=torch.uint8, device=device) if packed is None else packed.to(device)

    @property
    def count(self) -> int:
        """K, the number of stored patterns."""
        return self.packed.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the packed patterns: K · ceil(d / 8)."""
        return self.packed.numel()

    def append(self, patterns: Tensor) -> None:
        """Append ±1 ``patterns`` of shape (k, d)."""
        self.packed = torch.cat([self.packed, pack_bits((patterns > 0).to(torch.uint8))])

    def _chunks(self, dtype: torch.dtype, centre: float, reuse: bool = True) -> Iterator[tuple[int, int, Tensor]]:
        """Yield (start, stop, Y[:, start:stop]) with Y = X - centre, chunk widths a multiple of 8.

        With ``reuse`` every chunk is written into one buffer (fresh 16 MB allocations cost page faults);
        pass False where autograd keeps the chunks for a backward pass.
        """
        if self.count == 0:
            return
        width = max(8, (_CHUNK_FLOATS // self.count) // 8 * 8)
        table = _BYTE_SIGNS.to(device=self.packed.device, dtype=dtype) - centre
        buffer = None
        for start in range(0, self.dim, width):
            stop = min(start + width, self.dim)
            block = self.packed[:, start // 8 : math.ceil(stop / 8)].reshape(-1).int()
            if reuse:
                if buffer is None:
                    buffer = table.new_empty(block.numel() * 8)
                out = buffer[: block.numel() * 8].view(block.numel(), 8)
                values = torch.index_select(table, 0, block, out=out)
            else:
                values = table.index_select(0, block)
            yield start, stop, values.view(self.count, -1)[:, : stop - start]

    def unpack(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """All patterns as ±1, shape (K, d); K·d floats, so for small sizes only."""
        return unpack_bits(self.packed, self.dim).to(dtype) * 2 - 1

    def column(self, unit: int, dtype: torch.dtype, centre: float = 0.0) -> Tensor:
        """Unit ``unit`` of every pattern, centred: shape (K,)."""
        bits = (self.packed[:, unit // 8] >> (7 - unit % 8)) & 1
        return bits.to(dtype) * 2 - 1 - centre

    def overlaps(self, states: Tensor, centre: float = 0.0) -> Tensor:
        """``states @ Yᵀ``: states (n, d) -> (n, K); differentiable in ``states``."""
        out = states.new_zeros(states.shape[0], self.count)
        reuse = not (torch.is_grad_enabled() and states.requires_grad)
        for start, stop, chunk in self._chunks(states.dtype, centre, reuse):
            out = out + states[:, start:stop] @ chunk.T
        return out

    def combine(self, coefficients: Tensor, centre: float = 0.0) -> Tensor:
        """``coefficients @ Y``: (n, K) -> (n, d); differentiable in ``coefficients``."""
        reuse = not (torch.is_grad_enabled() and coefficients.requires_grad)
        parts = [coefficients @ chunk for _, _, chunk in self._chunks(coefficients.dtype, centre, reuse)]
        return torch.cat(parts, dim=-1) if parts else coefficients.new_zeros(coefficients.shape[0], self.dim)

    def quadratic_diagonal(self, coupling: Tensor, centre: float = 0.0) -> Tensor:
        """``diag(Yᵀ A Y)`` for a (K, K) ``coupling`` A: shape (d,), in A's dtype."""
        parts = [((coupling @ chunk) * chunk).sum(0) for _, _, chunk in self._chunks(coupling.dtype, centre)]
        return torch.cat(parts) if parts else coupling.new_zeros(self.dim)
