"""An exclusive, per-directory lock held by the one process that writes a run directory.

The lock is ``fcntl.flock`` on ``RUN/.lock``: the kernel releases it when the holder's process ends, however
it ends (``kill -9`` included), so a crashed run never stays locked. The holder writes its pid, host and
command line into the file so a refused writer can say who holds it. Within one process the lock is
reentrant: taking it again only counts, and the lock goes when the last holder releases it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from pathlib import Path

__all__ = ["LOCK_NAME", "RunBusyError", "acquire", "release", "holds"]

LOCK_NAME = ".lock"


class RunBusyError(ValueError):
    """Another process holds the run directory's lock (a ``ValueError``, so commands report it as a user error)."""


class _Held:
    def __init__(self, fd: int, pid: int) -> None:
        self.fd, self.pid, self.depth = fd, pid, 1


_HELD: dict[Path, _Held] = {}  # resolved run directory -> this process's lock on it


def _key(folder: Path) -> Path:
    return folder.resolve()


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "held by another process"
    return f"held by pid {info['pid']} on {info.get('host', '?')}, running {info.get('command', '?')!r}"


def acquire(folder: str | os.PathLike) -> None:
    """Take the exclusive lock on ``folder`` (created if missing), or raise :class:`RunBusyError`.

    Never waits: a second writer is refused at once with the holder's pid, host and command.
    """
    folder = Path(folder)
    held = _HELD.get(_key(folder)) if folder.exists() else None
    if held is not None and held.pid == os.getpid():
        held.depth += 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusyError(
                f"{folder} is being written by another process: its lock {lock_path} is {_holder(lock_path)}. "
                "Wait until that command ends, or choose another --out directory."
            ) from None
        try:  # the file we locked must still be the one at lock_path (not unlinked and re-created meanwhile)
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    _HELD[_key(folder)] = _Held(fd, os.getpid())


def release(folder: str | os.PathLike) -> None:
    """Give back one :func:`acquire` of ``folder``; the lock goes when the outermost holder releases it."""
    key = _key(Path(folder))
    held = _HELD.get(key)
    if held is None or held.pid != os.getpid():
        return
    held.depth -= 1
    if held.depth == 0:
        del _HELD[key]
        os.ftruncate(held.fd, 0)  # no stale holder information once nobody holds it
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)


def holds(folder: str | os.PathLike) -> bool:
    """Whether this process holds the lock on ``folder``."""
    held = _HELD.get(_key(Path(folder)))
    return held is not None and held.pid == os.getpid()
