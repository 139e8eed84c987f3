"""The store file format: safetensors tensors plus a JSON header with a format version and a checksum.

Layout: the safetensors metadata holds one key, ``"hopfield_masks"``, whose value is JSON text with
``format`` ("hopfield_masks.store"), ``format_version``, ``rule``, ``rule_options``, ``backend``, ``dim``,
``count``, ``dtype``, ``layout`` and ``checksum`` (SHA-256 over every tensor's name, dtype, shape and
bytes). Optional: ``run_weights_sha256``, the SHA-256 of the weights file of the run the masks were
encoded from (absent in stores made without a run, and in stores written before it existed; a version-2
reader that does not know it ignores it, and the checksum covers it like every header field). Tensors: ``mean_pattern`` (d,) when count > 0, and the backend's state (``weights`` for dense;
``packed_patterns``, ``gram``, ``coupling``, ``diagonal`` for implicit; ``packed_patterns`` for modern).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from hopfield_masks.io import load_tensors, remove_stale_temp_files, save_tensors

FORMAT = "hopfield_masks.store"
FORMAT_VERSION = 2  # 2: the checksum covers the header too (1 covered the tensors only)
METADATA_KEY = "hopfield_masks"


def tensor_checksum(tensors: Mapping[str, Tensor], header: Mapping[str, Any] | None = None) -> str:
    """SHA-256 hex digest over the header (canonical JSON, its own ``checksum`` left out) and the tensors'
    names, dtypes, shapes and bytes, in name order.

    Covering the header matters: the rule's options, the count and the layout change the memory that loads.
    """
    digest = hashlib.sha256()
    if header is not None:
        described = {key: value for key, value in header.items() if key != "checksum"}
        digest.update(json.dumps(described, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_store(path: str | os.PathLike, tensors: Mapping[str, Tensor], header: Mapping[str, Any]) -> Path:
    """Write a store file atomically.

    Parameters
    ----------
    path : path of the file to write
    tensors : dict of str to Tensor
    header : dict
        JSON-ready description of the memory; format, version and checksum are added here.
    """
    check_store_target(path)
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **header}
    full["checksum"] = tensor_checksum(tensors, full)
    remove_stale_temp_files(path)  # what a killed earlier write of this store left (up to the store's size)
    return save_tensors(path, tensors, {METADATA_KEY: json.dumps(full, sort_keys=True)})


def is_store_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a regular file whose safetensors header says it is a Hopfield store.

    Reads the header only (not the tensors); a store whose tensors are damaged still counts.
    """
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size <= 100_000_000:
                return False
            header = json.loads(handle.read(size))
        described = json.loads(header["__metadata__"][METADATA_KEY])
        return isinstance(described, dict) and described.get("format") == FORMAT
    except (OSError, ValueError, UnicodeDecodeError, KeyError, TypeError):
        return False


def check_store_target(path: str | os.PathLike) -> Path:
    """Return ``path`` if a store may be written there: nothing exists there yet, or a store file (replaced).

    Anything else (a file of another kind, a folder, a fifo) raises ``ValueError``: a store never replaces it.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    if not is_store_file(path):
        kind = "a folder" if path.is_dir() else "a file that is not a Hopfield store" if path.is_file() else "not a regular file"
        raise ValueError(f"{path} exists and is {kind}; a store file replaces only an earlier store. "
                         "Choose a new path for the store (e.g. NAME.store).")
    return path


def load_store(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and verify a store file: returns (tensors, header).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Truncated, corrupted (checksum), foreign (no store header) or newer-version file.
    """
    tensors, metadata = load_tensors(path, what="store file")
    if METADATA_KEY not in metadata:
        raise ValueError(
            f"store file {path} is a safetensors file without a {METADATA_KEY!r} header, so it is not a Hopfield "
            "store (foreign file?). Write stores with HopfieldMemory.save()."
        )
    try:
        header = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(f"store file {path} has a corrupted header ({err}); re-encode the masks.") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else header
        raise ValueError(f"store file {path} has format {found!r}, expected {FORMAT!r}; it was written by another program.")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"store file {path} has an invalid format_version {version!r}; the header is corrupted.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"store file {path} has format_version {version}, newer than this code reads ({FORMAT_VERSION}); "
            "upgrade hopfield_masks to read it."
        )
    if version < FORMAT_VERSION:
        raise ValueError(
            f"store file {path} has format_version {version}, older than this code reads ({FORMAT_VERSION}): its "
            "checksum does not cover the header. Re-encode the masks with `supsup encode`."
        )
    if header.get("checksum") != tensor_checksum(tensors, header):
        raise ValueError(
            f"store file {path} is corrupted: its header and tensors do not match the checksum in its header. "
            "Re-encode the masks (the file may have been edited or damaged on disk)."
        )
    return tensors, header
