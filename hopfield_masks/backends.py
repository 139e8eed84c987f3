"""The backend registry: which memory class holds each learning rule under each backend name.

Imports run one way: :mod:`~hopfield_masks.memory` (the interface) knows no backend, each backend module
imports the interface, this registry imports the backends, and :mod:`~hopfield_masks.factory` builds and
loads memories through the registry. Adding a backend adds a module and its rows here; nothing else
branches on a rule's or a backend's name.
"""
from __future__ import annotations

from hopfield_masks.checks import check_backend, check_choice
from hopfield_masks.dense import DenseMemory
from hopfield_masks.implicit import ImplicitMemory
from hopfield_masks.memory import HopfieldMemory
from hopfield_masks.modern import ModernMemory
from hopfield_masks.rules import RULES

__all__ = ["BACKENDS", "MEMORY_CLASSES", "backends_of", "memory_class"]

BACKENDS: tuple[str, ...] = ("dense", "implicit")
"""Every backend name: "dense" keeps a d×d matrix, "implicit" the packed patterns and K×K matrices."""

MEMORY_CLASSES: dict[tuple[str, str], type[HopfieldMemory]] = {
    ("hebbian", "dense"): DenseMemory,
    ("hebbian", "implicit"): ImplicitMemory,
    ("storkey", "dense"): DenseMemory,
    ("storkey_reference", "dense"): DenseMemory,
    ("storkey_reference", "implicit"): ImplicitMemory,
    ("pseudoinverse", "dense"): DenseMemory,
    ("pseudoinverse", "implicit"): ImplicitMemory,
    ("covariance", "dense"): DenseMemory,
    ("covariance", "implicit"): ImplicitMemory,
    ("modern", "implicit"): ModernMemory,  # softmax retrieval over the packed patterns: no d×d form
}
"""(rule, backend) -> the memory class; the pairs are exactly each rule's ``LearningRule.backends``."""


def backends_of(rule: str) -> tuple[str, ...]:
    """The backend names ``rule`` has, in the order of :data:`BACKENDS`.

    Parameters
    ----------
    rule : str
        A key of ``RULES``.
    """
    check_choice(rule, "rule", RULES)
    return tuple(backend for backend in BACKENDS if (rule, backend) in MEMORY_CLASSES)


def memory_class(rule: str, backend: str) -> type[HopfieldMemory]:
    """The class that holds ``rule`` under ``backend``.

    Parameters
    ----------
    rule : str
        A key of ``RULES``.
    backend : str
        One of :data:`BACKENDS` that the rule has (``"auto"`` is resolved by ``default_backend`` first).

    Raises
    ------
    ValueError
        An unknown rule or backend (the message lists the choices), or a backend the rule has no form for
        (the message says why and which backend to use).
    """
    check_backend(backend, rule, backends_of(rule), BACKENDS, RULES[rule].missing_backends.get(backend, ""))
    return MEMORY_CLASSES[(rule, backend)]
