"""IDX files (the MNIST format): read and write, gzip or raw, with clear errors for bad or truncated files."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from hopfield_masks.io import atomic_write_bytes

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

# IDX type code -> numpy dtype (big-endian on disk).
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"IDX file {path} is gzip-compressed but cannot be decompressed ({err}); it is truncated or corrupted. "
            "Download it again."
        ) from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, detected from its first bytes).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    ndarray of the file's shape, e.g. (N, 28, 28) uint8 for images or (N,) uint8 for labels, in native byte order.

    Raises
    ------
    ValueError
        Bad magic number, unknown type code, or a data section shorter or longer than the header says.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = _raw_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, expected 0000 followed by a "
            f"type code in {[hex(c) for c in IDX_DTYPES]} and the number of dimensions. "
            "Point --data-dir at the MNIST IDX files (e.g. t10k-images-idx3-ubyte.gz)."
        )
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path} is truncated: its header promises {ndim} dimensions but the file ends first.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise ValueError(
            f"IDX file {path} is {what}: shape {tuple(shape)} needs {expected} data bytes, found {got}. "
            "Download it again."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file, atomically; gzip when ``compress`` (default: path ends in ``.gz``).

    Parameters
    ----------
    path : path-like
    array : ndarray of a dtype in :data:`IDX_DTYPES` (uint8 images of shape (N, H, W), labels of shape (N,))
    """
    path = Path(path)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}; use one of {sorted(str(d) for d in codes)}.")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    return atomic_write_bytes(path, data)
