"""Every task's binary masks bit-packed (one uint8 (K, ceil(d/8)) matrix per masked layer) and their products.

Task inference needs two products with the K stored masks M_i of a layer (d entries each):

- the superposition ``Σ_{i∈C} M_i / |C|`` of a candidate set C (column counts of the packed rows), and
- the inner products ``⟨g, M_i⟩`` of one float vector g with every mask (∂obj/∂α_i, see
  :mod:`supsup_core.infer.inference`).

Both are computed from the packed bytes, chunk by chunk, never unpacking the K×d masks to floats: memory
is K·d/8 bytes for the masks plus a bounded chunk. The inner products use a per-byte lookup table
``T[c, v] = Σ_b g[8c + b] · bit_b(v)`` (v = 0..255), so ``⟨g, M_i⟩ = Σ_c T[c, packed[i, c]]`` is one
gather-sum per byte instead of eight multiply-adds per bit.

The inner products are exact sums, so identical masks get bitwise identical products on every CPU and
GPU, whatever their rows: g is first rounded to a fixed-point grid, ``q = round(g · 2^e)`` held in float64,
with ``e`` chosen so that ``Σ_j |q_j| ≤ 2^53``. Every partial sum of any subset of the ``q_j`` is then an
integer that float64 represents exactly, so no addition rounds and the order in which a BLAS kernel, a
gather-sum or a GPU reduction adds them (which may depend on a row's position or alignment) cannot
matter. The one rounding is g's to the grid: at most ``2^-e-1 ≤ Σ|g| · 2^-52`` per entry, so at most
``d · Σ|g| · 2^-52`` in all, 2^28 times below the bound of a float32 sum (``d · Σ|g| · 2^-24``). Products
cost float64 memory traffic: about 1.3-2x the time of the float32 kernels they replace (measured on a
2-core CPU, benchmarks/bench_inference.py).
"""
from __future__ import annotations

import math
import sys
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hopfield_masks.patterns import pack_bits, unpack_bits
from supsup_core.nn import modes

__all__ = ["PackedMasks", "candidate_ids", "packed_column_counts", "packed_inner_products"]

# Rows x bytes per chunk of the gather and counting kernels: small enough to stay in cache.
_GATHER_ELEMENTS = 1 << 17
# From this many rows on, the per-byte table beats unpacking (measured on a 2-core CPU).
_TABLE_MIN_ROWS = 64
# Σ_j |g_j| · 2^e stays below 2^_EXACT_BITS; rounding each of the d entries adds at most d / 2, so every
# partial sum stays below 2^53 (exact in float64) for any d < 2^52.
_EXACT_BITS = 52
# One bit per byte lane of an int64 word; the lane order of .view() below assumes a little-endian machine.
_LANES = 0x0101010101010101


_BYTE_BITS: dict[tuple[torch.device, torch.dtype], Tensor] = {}


def _byte_bits(device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """(256, 8) table: entry [v, b] is unit b of byte value v in pack_bits' bit order (cached per device, dtype)."""
    key = (torch.device(device), dtype)
    if key not in _BYTE_BITS:
        values = torch.arange(256, dtype=torch.uint8, device=device).view(256, 1)
        _BYTE_BITS[key] = unpack_bits(values, 8).to(dtype)
    return _BYTE_BITS[key]


def _bit_shifts() -> list[int]:
    """Right shift that brings unit b of a packed byte to the lowest bit, for b = 0..7."""
    table = _byte_bits(torch.device("cpu"))
    return [int(torch.nonzero(table[1 << s]).item()) for s in range(8)]


# _UNIT_OF_SHIFT[s] = the unit stored at bit s; inverted here into the shift for each unit.
_UNIT_OF_SHIFT = _bit_shifts()
_SHIFT_OF_UNIT = [_UNIT_OF_SHIFT.index(b) for b in range(8)]


def _check_little_endian() -> None:
    if sys.byteorder != "little":  # checked where used: an import-time assert would vanish under python -O
        raise RuntimeError(f"packed_column_counts reads mask bytes as little-endian int64 words; this machine is "
                           f"{sys.byteorder}-endian, where it is untested. Run on a little-endian CPU (x86-64, ARM64).")


def candidate_ids(candidates: Sequence[int] | Tensor, num_tasks: int) -> Tensor:
    """``candidates`` checked to be distinct task ids in ``0..num_tasks-1``, at least one (the one check of
    a candidate set, for :class:`PackedMasks` and :mod:`supsup_core.infer.inference` alike).

    Parameters
    ----------
    candidates : sequence of int or Tensor of shape (C,)
    num_tasks : int
        K, the number of stored task masks.

    Returns
    -------
    Tensor of shape (C,), long, on the CPU, in the order given.
    """
    ids = torch.as_tensor(candidates, dtype=torch.long).reshape(-1).cpu()
    if ids.numel() == 0:
        raise ValueError("candidates is empty; pass at least one task id to infer among.")
    if int(ids.min()) < 0 or int(ids.max()) >= num_tasks:
        raise ValueError(
            f"candidates must be task ids in 0..{num_tasks - 1} ({num_tasks} stored); got {ids.tolist()}. "
            "Pass the learned tasks only (e.g. range(num_learned))."
        )
    if len(set(ids.tolist())) != ids.numel():
        raise ValueError(f"candidates must not repeat a task id; got {ids.tolist()}. Pass distinct task ids.")
    return ids


def _rows(packed: Tensor, rows: Tensor | None) -> Tensor:
    if rows is None or (rows.numel() == packed.shape[0] and bool((rows.cpu() == torch.arange(rows.numel())).all())):
        return packed  # every row in order: no copy
    return packed.index_select(0, rows.to(packed.device))


def _fixed_point(values: Tensor) -> tuple[Tensor, int]:
    """``(q, e)``: float ``values`` rounded to integers ``q = round(values · 2^e)`` held in float64, ``Σ|q| ≤ 2^53``.

    Non-finite values come back unscaled (``e = 0``): their products are NaN or ±inf whatever the order.
    """
    values = values.float()
    total = float(values.abs().sum(dtype=torch.float64))
    if total == 0.0 or not math.isfinite(total):
        return values.double(), 0
    exponent = _EXACT_BITS - math.frexp(total)[1]  # total < 2^frexp, so total · 2^exponent < 2^52
    # Scaling by powers of two is exact in float32 (no entry overflows: each is below 2^52); two factors
    # keep each one inside float32's range. A float32 of 2^23 or more is already an integer, a smaller one
    # rounds to an integer below 2^24, so rounding in float32 is exact too (and half the memory traffic).
    half = exponent // 2
    scaled = values * 2.0**half
    scaled *= 2.0 ** (exponent - half)
    return scaled.round_().double(), exponent


def _integer_products(block: Tensor, grid: Tensor) -> Tensor:
    """``Σ_j grid[j] · M_i[j]`` for each row of ``block`` (R, width), float64; exact when ``grid`` holds
    integers with ``Σ|grid| ≤ 2^53`` (every partial sum is then representable, so no addition rounds)."""
    num_rows, width = block.shape
    out = torch.zeros(num_rows, dtype=torch.float64, device=grid.device)
    if num_rows < _TABLE_MIN_ROWS:
        # Few rows: unpacking (one 8-entry table row per byte) then a matrix-vector product is cheaper
        # than building the 256-entry table per byte.
        bits_of = _byte_bits(grid.device, torch.float64)
        step = max(64, _GATHER_ELEMENTS * 4 // (8 * num_rows))  # (R, 8·step) float64: 4 MB (measured)
        for lo in range(0, width, step):
            hi = min(width, lo + step)
            bits = F.embedding(block[:, lo:hi].contiguous().to(torch.int32), bits_of).view(num_rows, -1)  # (R, 8c)
            out += bits @ grid[8 * lo : 8 * hi]
        return out
    grouped = grid.view(width, 8)
    byte_bits = _byte_bits(grid.device, torch.float64)
    low_t, high_t = byte_bits[:16].t(), byte_bits[::16].t()  # (8, 16): the bits of v & 15 and of v & 240
    # Chunks of c bytes: a (c, 256) table and (R, c) indices stay in cache (measured fastest near R·c = 2^17).
    step = max(64, _GATHER_ELEMENTS // num_rows)
    offsets = torch.arange(0, 256 * min(step, width), 256, dtype=torch.int32, device=grid.device)
    for lo in range(0, width, step):
        hi = min(width, lo + step)
        # T[c, v] at 256·c + v, as the sum of two 16-entry nibble tables (8x fewer flops than (c, 8) @ (8, 256))
        part = grouped[lo:hi]
        table = ((part @ high_t).unsqueeze(2) + (part @ low_t).unsqueeze(1)).view(-1)
        index = block[:, lo:hi].contiguous().to(torch.int32)  # contiguous first: converting strided bytes is slow
        index += offsets[: hi - lo]
        out += table.index_select(0, index.view(-1)).view(num_rows, hi - lo).sum(1)
    return out


def _exact_inner_products(packed: Tensor, vector: Tensor, rows: Tensor | None) -> Tensor:
    """:func:`packed_inner_products` in float64, before the final rounding to float32."""
    block = _rows(packed, rows)
    num_rows, width = block.shape
    d = vector.numel()
    if width != math.ceil(d / 8):
        raise ValueError(
            f"packed masks of width {width} bytes hold ceil(d / 8) bytes per row, so vector must have {8 * width - 7}..{8 * width} "
            f"entries; got {d}. Pass the vector of the layer these masks belong to."
        )
    if num_rows == 0:
        return torch.zeros(0, dtype=torch.float64, device=vector.device)
    grid, exponent = _fixed_point(F.pad(vector.detach().reshape(-1).float(), (0, 8 * width - d)))
    return _integer_products(block, grid) * 2.0**-exponent  # exact: an integer below 2^53 times a power of two


def packed_inner_products(packed: Tensor, vector: Tensor, rows: Tensor | None = None) -> Tensor:
    """Inner products ``⟨vector, M_i⟩`` of one float vector with packed binary masks, identical rows tying exactly.

    The vector is rounded once to a fixed-point grid fine enough that every sum is exact (see the module
    docstring), so the result does not depend on a row's position, the kernel, the thread count or the
    CPU: identical rows of ``packed`` always get bitwise identical products.

    Parameters
    ----------
    packed : Tensor of shape (K, ceil(d / 8)), uint8
        Row i is mask M_i packed by :func:`hopfield_masks.patterns.pack_bits`.
    vector : Tensor of shape (d,)
        Float values, e.g. the gradient of an objective with respect to the mask.
    rows : Tensor of shape (R,), long, optional
        Rows to use (default: all K).

    Returns
    -------
    Tensor of shape (R,), float32: ``Σ_j vector[j] · M_i[j]`` for each selected row.
    """
    return _exact_inner_products(packed, vector, rows).float()


def packed_column_counts(packed: Tensor, d: int, rows: Tensor | None = None) -> Tensor:
    """Per-unit counts ``Σ_i M_i[j]`` over packed binary masks.

    Parameters
    ----------
    packed : Tensor of shape (K, ceil(d / 8)), uint8
    d : int
        Number of units per mask.
    rows : Tensor of shape (R,), long, optional
        Rows to count (default: all K).

    Returns
    -------
    Tensor of shape (d,), int32.
    """
    _check_little_endian()
    block = _rows(packed, rows)
    num_rows, width = block.shape
    counts = torch.zeros(width, 8, dtype=torch.int32, device=packed.device)
    # SWAR: read 8 bytes as one int64; (word >> s) & 0x0101... holds bit s of each byte in its own byte lane,
    # so summing up to 255 rows counts 8 columns per addition without carries between lanes.
    step = 8 * max(1, (2 * _GATHER_ELEMENTS) // max(1, num_rows))  # ~2 MB of int64 words per chunk
    for lo in range(0, width, step):
        hi = min(width, lo + step)
        part = block[:, lo:hi]
        if (hi - lo) % 8:
            part = F.pad(part, (0, 8 - (hi - lo) % 8))
        words = part.contiguous().view(torch.int64)  # (R, c / 8)
        for r0 in range(0, num_rows, 255):
            rows_block = words[r0 : r0 + 255]
            for unit, shift in enumerate(_SHIFT_OF_UNIT):
                lanes = ((rows_block >> shift) & _LANES).sum(0)  # (c / 8,) int64, one count per byte lane
                counts[lo:hi, unit] += lanes.view(torch.uint8)[: hi - lo].to(torch.int32)
    return counts.view(-1)[:d]


class PackedMasks:
    """The binary masks of K tasks for every masked layer of a model, bit-packed.

    Memory is ``K · Σ_layers ceil(d_layer / 8)`` bytes; nothing grows with K by more than d/8 bytes
    per task. The mean of a candidate set is cached (one set at a time), so repeated one-shot inference
    over the same tasks pays for the superposition once.

    Parameters
    ----------
    packed : dict of str to Tensor of shape (K, ceil(d / 8)), uint8
        One matrix per masked layer (names as :func:`supsup_core.nn.modes.masked_layers`), same K for all.
    shapes : dict of str to tuple of int
        Each layer's mask shape; ``d = prod(shape)``.
    """

    def __init__(self, *, packed: Mapping[str, Tensor], shapes: Mapping[str, Sequence[int]]) -> None:
        if set(packed) != set(shapes) or not packed:
            raise ValueError(
                f"packed and shapes must name the same, non-empty set of layers; got {sorted(packed)} and {sorted(shapes)}."
            )
        self._shapes = {name: tuple(int(s) for s in shapes[name]) for name in packed}
        counts = set()
        for name, matrix in packed.items():
            width = math.ceil(math.prod(self._shapes[name]) / 8)
            if matrix.dtype != torch.uint8 or matrix.dim() != 2 or matrix.shape[1] != width:
                raise ValueError(
                    f"packed[{name!r}] must be uint8 of shape (K, {width}) for a mask of shape {self._shapes[name]}; "
                    f"got {matrix.dtype} of shape {tuple(matrix.shape)}. Pack each task's flattened mask with pack_bits."
                )
            counts.add(matrix.shape[0])
        if len(counts) != 1:
            raise ValueError(f"every layer must hold the same number of tasks; got {sorted(counts)} rows. Pack all tasks of all layers.")
        self._packed = {name: matrix.contiguous() for name, matrix in packed.items()}
        self._mean_key: tuple[int, ...] | None = None
        self._mean: dict[str, Tensor] = {}

    # ---------------------------------------------------------------- builders
    @classmethod
    def from_task_masks(cls, tasks: Iterable[Mapping[str, Tensor]]) -> PackedMasks:
        """Pack tasks given one at a time as ``{layer name: binary mask}`` (only one task unpacked at once)."""
        rows: dict[str, list[Tensor]] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for masks in tasks:
            for name, mask in masks.items():
                shapes.setdefault(name, tuple(mask.shape))
                rows.setdefault(name, []).append(pack_bits(mask.detach().reshape(-1).to(torch.uint8)))
        if not rows:
            raise ValueError("no tasks to pack: the model or run holds no trained task yet. Train at least one task first.")
        return cls(packed={name: torch.stack(r) for name, r in rows.items()}, shapes=shapes)

    @classmethod
    def from_model(cls, model: nn.Module, task_ids: Sequence[int] | None = None) -> PackedMasks:
        """Pack the masks of ``task_ids`` (default: every task the model holds) of all its masked layers."""
        ids = range(modes.num_tasks(model)) if task_ids is None else task_ids
        return cls.from_task_masks(modes.task_masks(model, t) for t in ids)

    @classmethod
    def random(cls, shapes: Mapping[str, Sequence[int]], num_tasks: int, *, density: float = 0.5,
               generator: torch.Generator | None = None) -> PackedMasks:
        """``num_tasks`` random masks with P(1) = ``density`` per layer (benchmarks, tests).

        ``density = 0.5`` draws random bytes directly (fast); other densities draw one task at a time.
        """
        if density == 0.5:
            packed = {}
            for name, shape in shapes.items():
                d = math.prod(shape)
                rows = torch.randint(0, 256, (num_tasks, math.ceil(d / 8)), dtype=torch.uint8, generator=generator)
                rows[:, -1] &= pack_bits(torch.ones(d, dtype=torch.uint8))[-1]  # padding bits stay 0, as pack_bits leaves them
                packed[name] = rows
            return cls(packed=packed, shapes=shapes)

        def draw(shape: Sequence[int]) -> Tensor:
            return torch.rand(math.prod(shape), generator=generator) < density

        return cls.from_task_masks({name: draw(shape).view(*shape) for name, shape in shapes.items()} for _ in range(num_tasks))

    # ---------------------------------------------------------------- views
    @property
    def num_tasks(self) -> int:
        """K, the number of packed tasks."""
        return next(iter(self._packed.values())).shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Layer names, in order."""
        return tuple(self._packed)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Mask shape of each layer."""
        return dict(self._shapes)

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed masks: K · Σ ceil(d / 8)."""
        return sum(m.numel() for m in self._packed.values())

    def packed(self, name: str) -> Tensor:
        """The (K, ceil(d / 8)) uint8 matrix of layer ``name``."""
        return self._packed[name]

    def to(self, device: torch.device | str) -> PackedMasks:
        """A copy on ``device``."""
        return PackedMasks(packed={n: m.to(device) for n, m in self._packed.items()}, shapes=self._shapes)

    def task_masks(self, task_id: int) -> dict[str, Tensor]:
        """Float 0/1 masks of one task by layer name, each of its layer's shape."""
        self._check_task(task_id)
        return {name: unpack_bits(m[task_id], math.prod(self._shapes[name])).float().view(self._shapes[name])
                for name, m in self._packed.items()}

    def unpack(self) -> dict[str, Tensor]:
        """All masks as floats, shape (K, *shape) per layer: K·d·4 bytes, the naive reference only."""
        return {name: unpack_bits(m, math.prod(self._shapes[name])).float().view(-1, *self._shapes[name])
                for name, m in self._packed.items()}

    # ---------------------------------------------------------------- products
    def mean_mask(self, candidates: Sequence[int] | Tensor) -> dict[str, Tensor]:
        """The uniform superposition ``Σ_{i∈C} M_i / |C|`` by layer name (float, each layer's shape).

        Parameters
        ----------
        candidates : sequence of int or Tensor of shape (C,)
            Task ids, at least one, each in ``0..K-1``.
        """
        rows = candidate_ids(candidates, self.num_tasks)
        key = tuple(rows.tolist())
        if key != self._mean_key:
            device = next(iter(self._packed.values())).device
            self._mean = {
                name: (packed_column_counts(m, math.prod(self._shapes[name]), rows.to(device)).float() / len(key)).view(self._shapes[name])
                for name, m in self._packed.items()
            }
            self._mean_key = key
        return {name: mean.clone() for name, mean in self._mean.items()}

    def inner_products(self, vectors: Mapping[str, Tensor], candidates: Sequence[int] | Tensor) -> Tensor:
        """``Σ_layers ⟨vectors[layer], M_i[layer]⟩`` for each candidate task i.

        Parameters
        ----------
        vectors : dict of str to Tensor of each layer's mask shape
            E.g. the gradient of an objective with respect to each layer's mask.
        candidates : sequence of int or Tensor of shape (C,)

        Returns
        -------
        Tensor of shape (C,), float32, in the order of ``candidates``; bitwise equal for identical masks
        (see :func:`packed_inner_products`).
        """
        rows = candidate_ids(candidates, self.num_tasks)
        # float64 per layer, rounded to float32 once: the same elementwise additions for every row, so
        # identical masks still tie exactly.
        total = None
        for name, matrix in self._packed.items():
            part = _exact_inner_products(matrix, vectors[name].reshape(-1), rows.to(matrix.device))
            total = part if total is None else total + part
        return total.float()

    # ---------------------------------------------------------------- helpers
    def _check_task(self, task_id: int) -> None:
        if not 0 <= int(task_id) < self.num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: {self.num_tasks} task(s) are packed (ids 0..{self.num_tasks - 1}).")
