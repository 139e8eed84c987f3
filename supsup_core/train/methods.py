"""The registry of continual-learning methods a run can train with (``supsup train --method NAME``)."""
from __future__ import annotations

from supsup_core.checks import check_choice
from supsup_core.nn.method import Method, SupSup

__all__ = ["METHODS", "get_method"]

# name -> Method class; a new method adds its class here (and its files), never a branch in the trainer
METHODS: dict[str, type[Method]] = {
    SupSup.name: SupSup,
}


def get_method(name: str) -> Method:
    """The method registered as ``name`` (``ValueError`` naming the registered ones otherwise)."""
    check_choice(name, "method", METHODS, "Pick a method from supsup_core.train.methods.METHODS.")
    return METHODS[name]()
