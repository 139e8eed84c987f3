"""The registry of continual-learning methods a run can train with (``supsup train --method NAME``)."""
from __future__ import annotations

from supsup_core.baselines.batchensemble import BatchEnsemble
from supsup_core.baselines.bounds import FineTune, FineTuneMultiHead, Separate
from supsup_core.baselines.psp_methods import PSPBinary, PSPComplex, PSPRotation
from supsup_core.checks import check_choice
from supsup_core.nn.method import Method, SupSup

__all__ = ["METHODS", "get_method"]

# name -> Method class; a new method adds its class here (and its files), never a branch in the trainer
METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (SupSup, PSPRotation, PSPComplex, PSPBinary, BatchEnsemble, FineTune, FineTuneMultiHead, Separate)
}


def get_method(name: str, *, seed: int = 0, context_powers: bool = False) -> Method:
    """The method registered as ``name`` for a run seeded ``seed`` (``ValueError`` naming the registered ones otherwise).

    ``context_powers`` (PSP rotation and complex only) makes task ``t`` use the ``t+1``-th power of one context.
    """
    check_choice(name, "method", METHODS, "Pick a method from supsup_core.train.methods.METHODS.")
    return METHODS[name](seed=seed, context_powers=context_powers)
