"""Building memories by rule and backend name, and reading them back from store files."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch

from hopfield_masks.checks import check_backend, check_choice, check_positive_int, check_rule_options
from hopfield_masks.dense import DenseMemory
from hopfield_masks.files import load_store
from hopfield_masks.implicit import ImplicitMemory
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.modern import ModernMemory
from hopfield_masks.patterns import MaskLayout
from hopfield_masks.rules import RULES

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def default_backend(rule: str) -> str:
    """The backend a rule uses when none is asked for: dense where it has one, else implicit."""
    check_choice(rule, "rule", RULES)
    return RULES[rule].backends[0]


def make_memory(rule: str, dim: int, backend: str = "dense", *, layout: MaskLayout | None = None,
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                **rule_options: Any) -> HopfieldMemory:
    """Make an empty memory.

    Parameters
    ----------
    rule : str
        A key of ``RULES``: "hebbian", "storkey", "storkey_reference", "pseudoinverse", "covariance", "modern".
    dim : int
        d, the number of units (``layout.dim`` when a layout is given).
    backend : {"dense", "implicit"}
        "dense": a d×d matrix (not for "modern"); "implicit": packed patterns and K×K matrices (not for
        "storkey").
    layout : MaskLayout, optional
    device : torch.device or str, optional
    dtype : torch.dtype
    **rule_options
        The rule's options: covariance ``mean_activity``, ``threshold``; pseudoinverse ``zero_diagonal``;
        modern ``beta``.

    Returns
    -------
    HopfieldMemory (DenseMemory, ImplicitMemory or ModernMemory)
    """
    check_choice(rule, "rule", RULES)
    check_positive_int(dim, "dim")
    rule_class = RULES[rule]
    check_backend(rule, backend, rule_class.backends)
    check_rule_options(rule, rule_options, [f.name for f in dataclasses.fields(rule_class)])
    learning_rule = rule_class(**rule_options)
    if rule == "modern":
        memory_class: type[HopfieldMemory] = ModernMemory
    else:
        memory_class = DenseMemory if backend == "dense" else ImplicitMemory
    return memory_class(learning_rule, dim, layout=layout, device=device, dtype=dtype)


def load_memory(path: str | os.PathLike, *, device: torch.device | str | None = None) -> HopfieldMemory:
    """Read a memory from a store file written by ``HopfieldMemory.save`` (verified, see ``load_store``)."""
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
    memory = make_memory(
        rule, dim, backend, layout=None if layout is None else MaskLayout.from_dict(layout),
        device=device, dtype=DTYPES[dtype_name], **options,
    )
    memory._load_state(tensors, count, path)
    return memory
