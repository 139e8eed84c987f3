"""Validation of every public input of hopfield_masks, with one wording for each kind of error.

Each check raises ``ValueError`` (or ``TypeError`` for the wrong kind of object) naming the parameter,
what was expected, what was found, and how to fix it.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "check_backend",
    "check_choice",
    "check_fraction",
    "check_kwta",
    "check_layer_shape",
    "check_layout_names",
    "check_loads",
    "check_masks",
    "check_patterns",
    "check_positive_int",
    "check_rule_options",
    "check_run_digest",
    "check_states",
    "check_store_tensor",
    "check_tensor",
    "format_nbytes",
    "memory_too_large",
    "parse_nbytes",
    "require_stored",
]


def check_tensor(value: Any, name: str) -> Tensor:
    """Return ``value`` if it is a torch tensor, else raise ``TypeError`` naming the fix."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}. Convert it with torch.as_tensor(...).")
    return value


_BLOCK = 1 << 22  # elements checked at a time, so checks of huge inputs need little extra memory


def _first_violation(values: Tensor, allowed: tuple[float, float]) -> tuple[int, float] | None:
    """Flat index and value of the first element of ``values`` outside ``allowed``, or None."""
    flat = values.reshape(-1)
    low, high = allowed
    for start in range(0, flat.numel(), _BLOCK):
        block = flat[start : start + _BLOCK]
        bad = (block != low) & (block != high)
        if bool(bad.any()):
            index = start + int(bad.nonzero()[0, 0])
            return index, float(flat[index])
    return None


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:g}"


def check_masks(masks: Any, name: str = "masks") -> Tensor:
    """Check that ``masks`` holds only 0 and 1 (bool, integer or float); return it unchanged."""
    masks = check_tensor(masks, name)
    if masks.dtype == torch.bool:
        return masks
    violation = _first_violation(masks, (0, 1))
    if violation is not None:
        index, value = violation
        raise ValueError(
            f"{name} must hold only 0 and 1; found {_describe(value)} at flat index {index}. "
            "Threshold the scores first (e.g. scores >= 0 or a top-k mask)."
        )
    return masks


def check_patterns(patterns: Any, dim: int | None = None, name: str = "patterns") -> Tensor:
    """Check ±1 patterns of shape (d,) or (n, d); return them as a 2-D tensor of shape (n, d)."""
    patterns = check_tensor(patterns, name)
    if patterns.ndim not in (1, 2):
        raise ValueError(
            f"{name} must have shape (d,) or (n, d); got shape {tuple(patterns.shape)}. "
            "Flatten layer masks with MaskLayout.flatten first."
        )
    if dim is not None and patterns.shape[-1] != dim:
        raise ValueError(
            f"{name} must have {dim} units in the last dimension (the memory's dim); got shape "
            f"{tuple(patterns.shape)}. Use patterns from the same layout the memory was made for."
        )
    violation = _first_violation(patterns, (-1, 1))
    if violation is not None:
        index, value = violation
        raise ValueError(
            f"{name} must hold only -1 and +1; found {_describe(value)} at flat index {index}. "
            "Convert {0,1} masks with masks_to_patterns, or real scores with torch.where(z >= 0, 1.0, -1.0)."
        )
    return patterns.reshape(-1, patterns.shape[-1])


def check_states(states: Any, dim: int, name: str = "states") -> Tensor:
    """Check real-valued states of shape (d,) or (n, d) for field/energy (values are not checked: gradients flow)."""
    states = check_tensor(states, name)
    if states.ndim not in (1, 2) or states.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape ({dim},) or (n, {dim}); got {tuple(states.shape)}. "
            "Pass one state per row, with the memory's dim units."
        )
    if not states.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {states.dtype}. Use states.float().")
    return states


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Check an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return value


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0, open_low: bool = False,
                   open_high: bool = False, hint: str = "") -> float:
    """Check a number in [low, high] (ends excluded where ``open_*``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must be a number in {left}{low:g}, {high:g}{right}; got {value!r}. {hint}".rstrip())
    return float(value)


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}.")
    return value


def check_loads(loads: Sequence[float]) -> tuple[float, ...]:
    """Check a non-empty sequence of positive finite loads (patterns per unit); return them as floats."""
    if len(loads) == 0:
        raise ValueError("loads must list at least one load (patterns / dim), e.g. 0.05,0.1,0.138.")
    for load in loads:
        if isinstance(load, bool) or not isinstance(load, (int, float)) or not (math.isfinite(load) and load > 0):
            raise ValueError(f"loads must be positive finite numbers (patterns / dim); got {load!r} in "
                             f"{tuple(loads)!r}. Use e.g. 0.05,0.1.")
    return tuple(float(x) for x in loads)


def check_kwta(kwta: Any, dim: int, mode: str = "sync") -> int | None:
    """Check a k-winners-take-all size: None (no k-WTA), or an integer 1 <= k <= ``dim`` with ``mode="sync"``."""
    if kwta is None:
        return None
    check_positive_int(kwta, "kwta")
    if kwta > dim:
        raise ValueError(f"kwta must satisfy k <= dim = {dim}; got k = {kwta}. Use round(density * dim).")
    if mode != "sync":
        raise ValueError(f"kwta works with mode='sync' only; got mode {mode!r}. Pass mode='sync', or kwta=None "
                         "for asynchronous recall.")
    return kwta


def check_rule_options(given: Mapping[str, Any], rule: str, allowed: Sequence[str]) -> None:
    """Check that every option in ``given`` (passed to learning rule ``rule``) is one of its ``allowed`` options."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"rule {rule!r} takes no option {unknown[0]!r}; its options are: {valid}.")


def check_backend(backend: Any, rule: str, backends: Sequence[str], known: Sequence[str], why: str = "") -> str:
    """Check that ``backend`` is one of the ``known`` backend names and one that ``rule`` has (``backends``).

    ``why`` says why the rule has no form for ``backend`` (the rule's ``missing_backends``), for the message.
    """
    check_choice(backend, "backend", known)
    if backend not in backends:
        raise ValueError(f"rule {rule!r} has no {backend} backend ({why or 'it has no such form'}); "
                         f"use backend={backends[0]!r}.")
    return backend


def check_run_digest(digest: Any, name: str = "run_digest") -> str | None:
    """Check a run identity: None, or a SHA-256 hex digest (64 lowercase hex characters)."""
    if digest is None:
        return None
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{name} must be None or a SHA-256 hex digest (64 characters 0-9a-f); got {digest!r}. "
                         "Use RunDirectory.weights_digest().")
    return digest


def parse_nbytes(text: str, name: str = "size") -> int:
    """Bytes from ``"2147483648"``, ``"512M"``, ``"4G"``, ``"1.5GiB"`` or ``"800MB"`` (units are powers of 1024)."""
    cleaned = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if cleaned and cleaned[-1] in _UNITS:
        scale, cleaned = _UNITS[cleaned[-1]], cleaned[:-1]
    try:
        value = float(cleaned)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value * scale < 1:
        raise ValueError(f"{name} must be a positive size in bytes, optionally with a unit K, M, G or T "
                         f"(powers of 1024), e.g. 512M or 4G; got {text!r}.")
    return int(value * scale)


_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def format_nbytes(nbytes: int) -> str:
    """``nbytes`` with a binary unit, e.g. 10,080,160,000 -> "9.4 GiB"."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def memory_too_large(rule: str, backend: str, dim: int, count: int, need: int, limit: int,
                     backends: Sequence[str], detail: str = "") -> str:
    """The message of a memory refused because it would need more than ``limit`` bytes."""
    what = f"{'an' if backend[0] in 'aeiou' else 'a'} {backend} {rule!r} memory of d = {dim:,} units" + (f" holding {count:,} patterns" if count else "")
    if backend == "dense" and "implicit" in backends:
        fix = ("Use the implicit backend (backend='implicit', `--backend implicit`): it keeps the packed patterns "
               "and K×K matrices instead of the d×d matrix.")
    elif backend == "dense":
        fix = (f"Rule {rule!r} has only a dense d×d form; use a rule with an implicit backend (e.g. rule='pseudoinverse' "
               "with backend='implicit'), or raise the limit if the machine has that much memory.")
    else:
        fix = "Store fewer patterns, or raise the limit if the machine has that much memory."
    detail = f" ({detail})" if detail else ""
    return (f"{what} needs {need:,} bytes ({format_nbytes(need)}){detail}, over the limit of {limit:,} bytes "
            f"({format_nbytes(limit)}; max_bytes, `--max-memory`). {fix}")


def require_stored(count: int) -> None:
    """Raise when a memory is used before anything was stored."""
    if count == 0:
        raise ValueError("this memory holds no patterns; call store() first")


def check_layout_names(given: Iterable[str], names: Sequence[str]) -> None:
    """Check that the layer names ``given`` (a dict of masks' keys) are exactly the layout's ``names``."""
    given = list(given)
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if missing or extra:
        raise ValueError(
            f"masks do not match the layout: missing layers {missing}, unexpected layers {extra}; "
            f"expected exactly {list(names)}. Build the layout with MaskLayout.from_masks on the same model."
        )


def check_layer_shape(got: Sequence[int], name: str, expected: Sequence[int]) -> None:
    """Check that the shape ``got`` of layer mask ``name`` ends in the layout's shape for it (``expected``)."""
    if tuple(got[len(got) - len(expected):]) != tuple(expected) or len(got) < len(expected):
        raise ValueError(
            f"mask {name!r} must end in shape {tuple(expected)} (the layout's shape); got {tuple(got)}. "
            "Use masks from the same model the layout was made for."
        )


def check_store_tensor(tensors: Mapping[str, Tensor], name: str, shape: Sequence[int], dtype: torch.dtype,
                       path: Any) -> Tensor:
    """Check that a store file holds tensor ``name`` with ``shape`` and ``dtype``."""
    if name not in tensors:
        raise ValueError(
            f"store file {path} lacks tensor {name!r}; it is corrupted or not a store of this kind. "
            "Re-encode the masks with HopfieldMemory.save()."
        )
    tensor = tensors[name]
    if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
        raise ValueError(
            f"store file {path}: tensor {name!r} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
            f"expected {tuple(shape)} and {dtype}; the file is corrupted. Re-encode the masks."
        )
    return tensor
