"""Atomic, pickle-free file writes and validated reads shared by stores and run directories."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

__all__ = [
    "atomic_write_bytes",
    "write_json",
    "read_json",
    "csv_text",
    "write_csv",
    "save_tensors",
    "load_tensors",
    "check_readable_file",
    "remove_stale_temp_files",
]

STALE_TEMP_SECONDS = 600.0
"""Age (since last modification) after which a temp file of an atomic write is taken to be left by a killed
writer: a live write touches its temp file for the few seconds of one write + fsync, never for minutes."""

# what tempfile.mkstemp puts between prefix and suffix: 8 characters of this alphabet
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")  # .NAME.XXXXXXXX.tmp, as atomic_write_bytes names them


def temp_file_target(name: str) -> str | None:
    """The file name an :func:`atomic_write_bytes` temp file called ``name`` was writing, or None if it is none."""
    match = _TEMP_NAME.fullmatch(name)
    return None if match is None else match.group("target")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, fsync, then rename.

    A crash mid-write leaves the old file (or none) in place, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temp_files(path: str | os.PathLike, *, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temp files a killed :func:`atomic_write_bytes` of ``path`` left beside it.

    Only names of exactly that write's pattern (``.NAME.XXXXXXXX.tmp`` in the same folder, XXXXXXXX as
    ``tempfile.mkstemp`` makes them) that are regular files, not symlinks, untouched for ``older_than``
    seconds: a write in progress (another process writing the same path right now) is left alone.

    Returns
    -------
    list of Path, the files removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    now = time.time()
    for entry in os.scandir(path.parent):
        if temp_file_target(entry.name) != path.name:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime >= older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:  # removed meanwhile (its writer finished, or another cleaner)
            continue
    return removed


def check_readable_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` if it is a regular file; ``FileNotFoundError`` if absent, ``ValueError`` if it is a
    folder, fifo, device or socket (reading a fifo would block, /dev/null reads as empty)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        kind = "folder" if path.is_dir() else "fifo" if path.is_fifo() else "device" if (
            path.is_char_device() or path.is_block_device()) else "socket" if path.is_socket() else "special file"
        raise ValueError(f"{what} {path} is a {kind}, not a regular file; give the path of the file itself.")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _canonical_header(raw: bytes) -> bytes:
    """Sort the ``__metadata__`` keys of a safetensors file so equal content gives equal bytes.

    safetensors writes metadata in hash-map order, which differs between processes. Sorting keeps the
    header's length (the same JSON, reordered), so the padding and data offsets stay valid.
    """
    size = int.from_bytes(raw[:8], "little")
    text = raw[8 : 8 + size].rstrip(b" ")
    header = json.loads(text)
    if "__metadata__" not in header:
        return raw
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    canonical = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(canonical) != len(text):  # escaping differs from serde's: keep the original bytes
        return raw
    return raw[:8] + canonical + raw[8 + len(text) :]


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with ``header`` and ``rows`` (None as an empty cell, floats in full precision), ``\n`` line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else repr(value) if isinstance(value, float) else value for value in row])
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write :func:`csv_text` of ``header`` and ``rows`` to ``path``, atomically."""
    return atomic_write_bytes(path, csv_text(header, rows).encode("utf-8"))


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Read a JSON file, turning a missing or malformed file into a ``ValueError`` that names it."""
    path = check_readable_file(path, what)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON ({err}); it may be truncated or corrupted") from err


def save_tensors(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save tensors with safetensors (contiguous CPU copies), atomically."""
    flat = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    raw = _st_save(flat, metadata=dict(metadata) if metadata else None)
    return atomic_write_bytes(path, _canonical_header(raw))


def load_tensors(path: str | os.PathLike, *, what: str = "tensor file") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a safetensors file and its metadata; a truncated or foreign file raises ``ValueError``."""
    path = check_readable_file(path, what)
    raw = path.read_bytes()
    try:
        tensors = _st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
    # only what a malformed file raises (safetensors.torch raises KeyError for a dtype torch lacks), so a
    # bug in this code surfaces as itself, not as "unreadable file"
    except (SafetensorError, ValueError, UnicodeDecodeError, KeyError) as err:
        raise ValueError(
            f"{what} {path} is not a readable safetensors file ({type(err).__name__}: {err}); "
            "it may be truncated, corrupted or of another format. Re-create it from its source."
        ) from err
    return tensors, dict(header.get("__metadata__", {}))
