"""Validation helpers shared by the supsup_core entry points, so every error reads the same way.

Every check takes the value first and its name second, as ``hopfield_masks.checks`` does.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

__all__ = ["check_choice", "check_positive", "check_fraction", "check_finite", "check_int", "check_output_size"]


def check_choice(value: Any, name: str, choices: Iterable[Any], fix: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices`` (the message lists them and the fix)."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}. {fix}".rstrip())


def check_finite(value: Any, name: str, fix: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is a real, finite number (not NaN, not ±inf, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}. {fix}".rstrip())


def check_int(value: Any, name: str, *, minimum: int | None = None, fix: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool, not 1.5), at least ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}. {fix}".rstrip())
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}. {fix}".rstrip())


def check_positive(value: float, name: str, fix: str = "") -> None:
    """Raise ``ValueError`` unless ``value`` is finite and ``> 0``."""
    check_finite(value, name, fix)
    if not value > 0:
        raise ValueError(f"{name} must be > 0; got {value!r}. {fix}".rstrip())


def check_fraction(value: float, name: str, fix: str = "") -> None:
    """Raise ``ValueError`` unless ``0 < value < 1``."""
    check_finite(value, name, fix)
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1; got {value!r}. {fix}".rstrip())


def check_output_size(output_size: int, real_outputs: int, *, needs_extra: bool = False) -> None:
    """Raise ``ValueError`` unless a model with ``output_size`` outputs can serve ``real_outputs`` classes
    (and, with ``needs_extra``, has superfluous outputs beyond them)."""
    if output_size < real_outputs:
        raise ValueError(
            f"the model has {output_size} outputs, fewer than the {real_outputs} classes (real_outputs); "
            f"build it with --output-size >= {real_outputs} (e.g. 100 or 500 for the superfluous objective)."
        )
    if needs_extra and output_size == real_outputs:
        raise ValueError(
            f"the superfluous objective needs extra outputs beyond the {real_outputs} classes; the model has "
            f"exactly {output_size}. Train with --output-size larger than {real_outputs} (e.g. 100) or use "
            "--objective entropy."
        )
