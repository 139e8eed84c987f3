"""A fused CPU RMSprop for supermask scores: one pass per step, writing the next masked weight as it goes.

On a CPU a training step of a masked MLP is bound by memory traffic, not by its matmuls. torch's RMSprop
sweeps each tensor five times and a threshold mask adds two more sweeps (``scores >= 0``, then ``⊙ W``).
:class:`FusedRMSprop` does the update in one sweep (``fused_rmsprop.c``, compiled once with the system
C compiler and loaded with ctypes) and, for each scores tensor given a :class:`MaskSink`, writes
``W ⊙ (scores >= 0)`` in that same sweep, so the next forward pass needs no mask work at all.

Without a C compiler (or with ``SUPSUP_FUSED=0``) :func:`kernels_available` is false and training uses
``torch.optim.RMSprop``; the two agree to float rounding. The compiled library is cached under
``$SUPSUP_CACHE_DIR`` (default ``~/.cache/supsup``), keyed by the source, compiler and flags, with the
sha256 of its bytes recorded beside it: a library is loaded from there only when the folder and files are
this user's alone to write and the digest matches (anything else is rebuilt, never loaded). The kernel
is built with OpenMP only where that shares torch's OpenMP runtime, so ``torch.set_num_threads`` governs
its threads too; otherwise it runs single-threaded (with one warning).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import hmac
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple

import torch
from torch.optim.rmsprop import rmsprop as torch_rmsprop

from hopfield_masks.io import atomic_write_bytes
from supsup_core.checks import check_finite

__all__ = ["FusedRMSprop", "MaskSink", "kernels_available"]

_SOURCE = Path(__file__).with_name("fused_rmsprop.c")
_SYMBOL = "supsup_rmsprop_step"
_FLAGS = ("-O3", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC")  # no fused multiply-adds
# OpenMP first (the library then shares torch's libgomp and its thread count); single-threaded where that
# does not build, or where it would bring an OpenMP runtime of its own (see _kernel).
# No -march: the same file runs on any machine of this architecture, and the loop is bound by memory.
_FLAG_SETS = (_FLAGS + ("-fopenmp",), _FLAGS)


class MaskSink(NamedTuple):
    """Where a fused step sends the masked weight of one scores tensor.

    ``weight`` is the fixed weight ``W`` (same shape as the scores); after each step ``write`` receives
    ``W ⊙ (scores >= 0)`` computed from the updated scores.
    """

    weight: torch.Tensor
    write: Callable[[torch.Tensor], None]


def _cache_dir() -> Path:
    root = os.environ.get("SUPSUP_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "supsup")
    return Path(root)


def _compiler() -> list[str] | None:
    """The C compiler command: ``$CC`` (split like a shell would, e.g. "ccache gcc"), else cc, gcc or clang."""
    if os.environ.get("CC"):
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return None if found is None else [found]


# ----------------------------------------------------------------------- the cache: only what this user built
def _private(st: os.stat_result) -> bool:
    """Whether a file or folder with status ``st`` belongs to this user and no one else may write to it."""
    return (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _digest_path(library: Path) -> Path:
    """Where the sha256 of ``library``'s bytes is recorded when it is built."""
    return library.with_name(library.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _trusted_cache_dir() -> Path | None:
    """The cache folder (made ``0700`` if missing), or None when it is not this user's alone to write."""
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder if _private(folder.stat()) else None


def _verified(library: Path) -> bool:
    """Whether ``library`` is what this user built there: a private, non-empty regular file (no link) whose
    bytes hash to the digest recorded beside it after the build. Anything else is rebuilt, never loaded."""
    try:
        st, digest = library.lstat(), _digest_path(library)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0 or not _private(st) or not _private(digest.lstat()):
            return False
        return hmac.compare_digest(digest.read_text(encoding="ascii").strip(), _sha256(library))
    except (OSError, UnicodeDecodeError):
        return False


def _compile(compiler: list[str], flags: tuple[str, ...], target: Path) -> None:
    """Build ``fused_rmsprop.c`` into ``target`` atomically (built beside it, then renamed), then record its digest."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run([*compiler, *flags, str(_SOURCE), "-o", str(built), "-lm"], check=True, capture_output=True, timeout=120)
        os.chmod(built, 0o755)  # never group- or other-writable, whatever the umask
        digest = _sha256(built)
        os.replace(built, target)
    atomic_write_bytes(_digest_path(target), digest.encode("ascii") + b"\n")
    os.chmod(_digest_path(target), 0o644)


class _MissingSymbol(OSError):
    """A library that loaded but does not export ``supsup_rmsprop_step``."""


def _open(library: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(library))
    if not hasattr(lib, _SYMBOL):
        raise _MissingSymbol(f"{library} does not export {_SYMBOL}")
    return lib


def _library_name(compiler: list[str], flags: tuple[str, ...], source: bytes) -> str:
    """The cached library's file name, keyed by everything that makes its bytes."""
    key = hashlib.sha256(b"\0".join([source, " ".join(compiler).encode(), " ".join(flags).encode(), platform.machine().encode()]))
    return f"fused_rmsprop-{key.hexdigest()[:16]}.so"


def _load(compiler: list[str], flags: tuple[str, ...], source: bytes) -> ctypes.CDLL:
    """The library for (source, compiler, flags, machine): from the cache, built into it on the first call.

    Only a library that :func:`_verified` accepts is loaded from the cache; a missing, empty, foreign or
    altered one is rebuilt first. Where there is no usable cache folder (no home, read-only, not writable,
    or writable by others), or the cached library lacks the kernel's symbol, the library is built into a
    temporary folder for this process only (Linux keeps it mapped after the folder is gone).
    """
    name = _library_name(compiler, flags, source)
    try:
        folder = _trusted_cache_dir()
        if folder is None:
            warnings.warn(f"the kernel cache folder {_cache_dir()} is not yours alone to write, so the fused RMSprop kernel "
                          "is built afresh for this process and nothing there is loaded. Point SUPSUP_CACHE_DIR at a "
                          "folder only you can write (e.g. chmod 700 it).", stacklevel=4)
        else:
            target = folder / name
            if not _verified(target):
                _compile(compiler, flags, target)
            try:
                return _open(target)
            except _MissingSymbol:
                _digest_path(target).unlink(missing_ok=True)  # the next process rebuilds it; this one builds privately
                raise
    except (RuntimeError, KeyError, OSError) as err:  # Path.home() without a home; EROFS, EACCES, no symbol, ...
        if isinstance(err, FileNotFoundError) and err.filename == compiler[0]:
            raise  # no such compiler: a private folder would not help
    # a fresh path: dlopen would hand back a library already loaded under the cached one's name
    with tempfile.TemporaryDirectory() as tmp:
        private = Path(tmp) / name
        _compile(compiler, flags, private)
        return _open(private)


# ----------------------------------------------------------------------- one OpenMP runtime, torch's
_OPENMP_RUNTIME = re.compile(r"^lib(gomp|iomp5|omp)\b.*\.so")


def _openmp_runtimes() -> frozenset[str]:
    """Paths of the OpenMP runtimes mapped into this process (read from /proc/self/maps; empty where there is none)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {parts[5].strip() for line in maps if len(parts := line.split(maxsplit=5)) == 6}
    except OSError:
        return frozenset()
    return frozenset(p for p in paths if _OPENMP_RUNTIME.match(os.path.basename(p)))


@functools.lru_cache(maxsize=None)
def _kernel():
    """The ctypes function ``supsup_rmsprop_step``, or None (switched off, no compiler, or the build failed)."""
    if os.environ.get("SUPSUP_FUSED", "1") == "0":
        return None
    compiler = _compiler()
    if compiler is None:
        warnings.warn("no C compiler found (tried $CC, cc, gcc, clang), so training uses torch's RMSprop, which is slower on "
                      "the CPU. Install one (e.g. gcc) for the fused kernel, or set SUPSUP_FUSED=0 to silence this.", stacklevel=3)
        return None
    source, errors = _SOURCE.read_bytes(), []
    for flags in _FLAG_SETS:
        torch_runtimes = _openmp_runtimes()  # torch is imported, so its runtime (if any) is mapped already
        try:
            lib = _load(compiler, flags, source)
        except (OSError, subprocess.SubprocessError) as err:
            detail = err.stderr.decode(errors="replace").strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
            errors.append(f"{' '.join(flags)}: {detail[-300:]}")
            continue
        foreign = _openmp_runtimes() - torch_runtimes
        if "-fopenmp" in flags and foreign:
            # its threads would not follow torch.set_num_threads (and two runtimes may oversubscribe the cores)
            warnings.warn(f"the OpenMP build of the fused RMSprop kernel loaded {', '.join(sorted(foreign))}, not the OpenMP "
                          f"runtime torch uses ({', '.join(sorted(torch_runtimes)) or 'none'}), so it runs single-threaded "
                          "instead. Build with the compiler torch was built with (set CC) for a multi-threaded kernel.",
                          stacklevel=3)
            continue
        fn = getattr(lib, _SYMBOL)
        fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64] + [ctypes.c_float] * 6
        fn.restype = None
        return fn
    warnings.warn(f"the fused RMSprop kernel did not build with {' '.join(compiler)}, so training uses torch's RMSprop "
                  f"(slower on the CPU); set SUPSUP_FUSED=0 to silence this. Errors: {' | '.join(errors)}", stacklevel=3)
    return None


def kernels_available() -> bool:
    """Whether the compiled kernel can be used (builds it on the first call; see the module docstring)."""
    return _kernel() is not None


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p | None:
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _fits_kernel(*tensors: torch.Tensor | None) -> bool:
    """Dense float32 CPU tensors of one shape: what the C loop can walk as flat arrays."""
    shape = tensors[0].shape
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32 and t.layout == torch.strided
                             and t.is_contiguous() and t.shape == shape) for t in tensors)


class FusedRMSprop(torch.optim.Optimizer):
    """``torch.optim.RMSprop`` (not centered) in one pass per tensor, plus masked weights for :class:`MaskSink` s.

    Parameters
    ----------
    params : iterable of Tensor
        What to train (supermask scores).
    lr, alpha, eps, weight_decay, momentum : float
        As in ``torch.optim.RMSprop``.
    masks : mapping of Tensor to MaskSink, optional
        For each scores tensor listed, the weight to mask and where to send ``W ⊙ (scores >= 0)`` after
        every step (see :meth:`supsup_core.nn.layers.MaskedLinear.mask_sink`).

    A tensor the kernel cannot take (not a contiguous float32 CPU tensor, or no kernel available) is
    updated with torch's own single-tensor RMSprop instead, and gets no masked weight.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        masks: Mapping[torch.Tensor, MaskSink] | None = None,
    ) -> None:
        hyper = dict(lr=float(lr), alpha=float(alpha), eps=float(eps), weight_decay=float(weight_decay), momentum=float(momentum))
        for name, value in hyper.items():
            check_finite(value, name, f"Give a finite {name}, as torch.optim.RMSprop takes.")
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0; got {value}.")
        super().__init__(params, hyper)
        self._masks = dict(masks or {})
        known = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) not in known for p in self._masks):
            raise ValueError("masks names a tensor that is not among params; give a MaskSink only for tensors this optimizer trains.")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One RMSprop update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        kernel = _kernel()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group, kernel)
        return loss

    def _update(self, p: torch.Tensor, group: dict, kernel) -> None:
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros(())
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["momentum"] > 0 and "momentum_buffer" not in state:  # also when momentum is turned on later
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        square_avg, buf = state["square_avg"], state.get("momentum_buffer") if group["momentum"] > 0 else None
        sink = self._masks.get(p)
        if kernel is None or not _fits_kernel(p, p.grad, square_avg, buf, None if sink is None else sink.weight):
            torch_rmsprop(
                [p], [p.grad], [square_avg], [], [buf] if buf is not None else [], [state["step"]], foreach=False,
                lr=group["lr"], alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
                momentum=group["momentum"], centered=False,
            )
            return
        state["step"] += 1
        masked = None if sink is None else torch.empty_like(p)
        kernel(_ptr(p), _ptr(p.grad), _ptr(square_avg), _ptr(buf), _ptr(None if sink is None else sink.weight), _ptr(masked),
               p.numel(), group["lr"], group["alpha"], 1 - group["alpha"], group["eps"], group["weight_decay"], group["momentum"])
        torch.autograd.graph.increment_version(p)  # written behind torch's back: tell autograd (and sinks) it changed
        if sink is not None:
            sink.write(masked)
