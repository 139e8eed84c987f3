"""Building memories by rule and backend name, and reading them back from store files."""
from __future__ import annotations

import os
from typing import Any

import torch

from hopfield_masks.backends import BACKENDS, backends_of, memory_class
from hopfield_masks.checks import check_choice, check_positive_int, check_run_digest
from hopfield_masks.files import load_store
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.patterns import MaskLayout
from hopfield_masks.rules import RULES, make_rule

__all__ = ["AUTO_DENSE_BYTES", "DEFAULT_MAX_BYTES", "DTYPES", "default_backend", "estimate_nbytes", "load_memory",
           "make_memory"]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

DEFAULT_MAX_BYTES = 2 << 30
"""Default bound on a new memory's bytes (2 GiB): well under a workstation's RAM, far above what a masks store needs."""

AUTO_DENSE_BYTES = 1 << 30
"""Largest dense memory ``backend="auto"`` builds when the rule also has an implicit form (1 GiB, d ≈ 16k)."""


def estimate_nbytes(rule: str, dim: int, backend: str, *, count: int = 0, dtype: torch.dtype = torch.float32,
                    **rule_options: Any) -> int:
    """Bytes a memory of ``rule`` and ``backend`` would need for ``count`` patterns of ``dim`` units.

    Nothing of that size is allocated; see ``HopfieldMemory.estimate_nbytes``.
    """
    check_choice(rule, "rule", RULES)
    check_positive_int(dim, "dim")
    check_positive_int(count, "count", minimum=0)
    backend_class = memory_class(rule, backend)
    return backend_class.estimate_nbytes(make_rule(rule, **rule_options), dim, count, dtype)


def default_backend(rule: str, dim: int, *, count: int = 0, dtype: torch.dtype = torch.float32,
                    max_bytes: int | None = DEFAULT_MAX_BYTES) -> str:
    """The backend ``backend="auto"`` picks.

    Dense (a d×d matrix, fastest at small d) where the rule has it and it needs at most
    ``min(max_bytes, AUTO_DENSE_BYTES)``; else implicit (packed patterns and K×K matrices, O(K·d/8 + K²))
    where the rule has it; else dense, which ``make_memory`` then refuses if it exceeds ``max_bytes``.
    ``count`` (patterns to be stored) matters only for implicit sizes.
    """
    check_choice(rule, "rule", RULES)
    check_positive_int(dim, "dim")
    backends = backends_of(rule)
    if "implicit" not in backends:
        return "dense"
    if "dense" not in backends:
        return "implicit"
    limit = AUTO_DENSE_BYTES if max_bytes is None else min(max_bytes, AUTO_DENSE_BYTES)
    # options do not change dense sizes
    dense = memory_class(rule, "dense").estimate_nbytes(RULES[rule](), dim, count, dtype)
    return "dense" if dense <= limit else "implicit"


def make_memory(rule: str, dim: int, backend: str = "auto", *, layout: MaskLayout | None = None,
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                max_bytes: int | None = DEFAULT_MAX_BYTES, run_digest: str | None = None,
                **rule_options: Any) -> HopfieldMemory:
    """Make an empty memory.

    Parameters
    ----------
    rule : str
        A key of ``RULES``: "hebbian", "storkey", "storkey_reference", "pseudoinverse", "covariance", "modern".
    dim : int
        d, the number of units (``layout.dim`` when a layout is given).
    backend : {"auto", "dense", "implicit"}
        "dense": a d×d matrix (not for "modern"); "implicit": packed patterns and K×K matrices (not for
        "storkey"); "auto": see :func:`default_backend` (dense while that is at most 1 GiB, else implicit).
    layout : MaskLayout, optional
    device : torch.device or str, optional
    dtype : torch.dtype
    max_bytes : int or None
        Refuse (``ValueError`` with the size, the limit and the fix) a memory whose
        ``estimate_nbytes`` exceeds this, now or when patterns are stored later. Default 2 GiB; None: no bound.
    run_digest : str, optional
        SHA-256 of the weights of the run the patterns come from (recorded in the store file).
    **rule_options
        The rule's options: covariance ``mean_activity``, ``threshold``; pseudoinverse ``zero_diagonal``;
        modern ``beta``.

    Returns
    -------
    HopfieldMemory (DenseMemory, ImplicitMemory or ModernMemory)
    """
    check_choice(rule, "rule", RULES)
    check_positive_int(dim, "dim")
    check_choice(backend, "backend", ("auto", *BACKENDS))
    if backend == "auto":
        backend = default_backend(rule, dim, dtype=dtype, max_bytes=max_bytes)
    backend_class = memory_class(rule, backend)
    learning_rule = make_rule(rule, **rule_options)
    return backend_class(learning_rule, dim, layout=layout, device=device, dtype=dtype, max_bytes=max_bytes,
                         run_digest=run_digest)


def load_memory(path: str | os.PathLike, *, device: torch.device | str | None = None,
                max_bytes: int | None = None) -> HopfieldMemory:
    """Read a memory from a store file written by ``HopfieldMemory.save`` (verified, see ``load_store``).

    The header's rule and backend pick the class through the backend registry
    (:data:`~hopfield_masks.backends.MEMORY_CLASSES`). ``max_bytes`` bounds it as in :func:`make_memory`
    (default: none, the file is already in memory).

    Parameters
    ----------
    path : path of a store file
    device : torch.device or str, optional
        Where the loaded state lives (default CPU).
    max_bytes : int or None

    Returns
    -------
    HopfieldMemory of the class the file was written from (DenseMemory, ImplicitMemory or ModernMemory).
    """
    tensors, header = load_store(path)
    try:
        rule, backend, dim, count = header["rule"], header["backend"], header["dim"], header["count"]
        options, dtype_name, layout = header["rule_options"], header["dtype"], header["layout"]
    except KeyError as err:
        raise ValueError(f"store file {path} lacks header field {err}; the file is corrupted. Re-encode the masks.") from err
    if rule not in RULES or dtype_name not in DTYPES or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"store file {path} has an unreadable header (rule {rule!r}, dtype {dtype_name!r}, count {count!r}); "
            "it is corrupted or from an incompatible version."
        )
    run_digest = header.get("run_weights_sha256")  # optional: absent in stores made without a run
    try:
        check_run_digest(run_digest, "the header's run_weights_sha256")
    except ValueError as err:
        raise ValueError(f"store file {path}: {err} The file is corrupted; re-encode the masks.") from err
    memory = make_memory(
        rule, dim, backend, layout=None if layout is None else MaskLayout.from_dict(layout),
        device=device, dtype=DTYPES[dtype_name], max_bytes=max_bytes, run_digest=run_digest, **options,
    )
    memory._load_state(tensors, count, path)
    return memory
