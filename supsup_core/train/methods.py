"""The registry of continual-learning methods a run can train with (``supsup train --method NAME``)."""
from __future__ import annotations

from typing import Any

from supsup_core.baselines.batchensemble import BatchEnsemble
from supsup_core.baselines.bounds import FineTune, FineTuneMultiHead, Separate
from supsup_core.baselines.psp_methods import PSPBinary, PSPComplex, PSPRotation
from supsup_core.checks import check_choice
from supsup_core.nn.method import Method, SupSup
from supsup_core.train.training import TrainConfig

__all__ = ["METHODS", "get_method", "method_train_config"]

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


def method_train_config(name: str, **fields: Any) -> TrainConfig:
    """A :class:`TrainConfig` for method ``name``: ``fields`` where given (not None), else the method's reference
    settings (:attr:`Method.train_defaults`: e.g. BatchEnsemble's Adam at lr 1e-2, 1e-4 for its shared weight),
    else TrainConfig's defaults."""
    check_choice(name, "method", METHODS, "Pick a method from supsup_core.train.methods.METHODS.")
    given = {key: value for key, value in fields.items() if value is not None}
    return TrainConfig(**{**METHODS[name].train_defaults, **given})
