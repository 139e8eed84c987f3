"""The weights every task shares and the optimizer kept over them, as a run stores them after a task.

A run whose method trains shared weights (PSP, fine-tuning, BatchEnsemble's first task) writes them with
the optimizer's state in one file at each task boundary, so a resumed run continues from exactly the state an
uninterrupted one had. Tensors: ``model.<state_dict key>`` and ``optimizer.<param index>.<key>``; metadata:
``after_task`` and ``optimizer`` (JSON: the param groups, and the state's non-tensor entries; ``null`` when
the run keeps no optimizer).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from torch import nn

__all__ = ["SharedState", "shared_state_tensors", "shared_state_from_tensors"]


class SharedState(NamedTuple):
    """The shared weights after task ``after_task`` (state_dict entries by key) and the state_dict of the
    optimizer kept over them (None if the run keeps none)."""

    after_task: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None


def shared_state_tensors(model: nn.Module, keys: Sequence[str],
                         optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the ``optimizer`` metadata entry that store ``model``'s shared weights (``keys`` of its
    state_dict) and ``optimizer``'s state."""
    state = model.state_dict()
    tensors = {f"model.{key}": state[key] for key in keys}
    if optimizer is None:
        return tensors, {"optimizer": json.dumps(None)}
    saved, scalars = optimizer.state_dict(), {}
    for index, entries in saved["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"optimizer": json.dumps({"param_groups": saved["param_groups"], "scalars": scalars})}


def shared_state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str],
                              layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]], *, where: Path, fix: str) -> SharedState:
    """Parse a shared-state file (``ValueError`` naming ``where`` and ending with ``fix`` if it is malformed or
    holds other weights than ``layout``: shape and dtype by state_dict key)."""
    try:
        after_task, optimizer = int(meta["after_task"]), json.loads(meta["optimizer"])
        if optimizer is not None:
            groups, scalars = optimizer["param_groups"], optimizer["scalars"]
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: malformed metadata ({type(err).__name__}: {err}). {fix}") from err
    weights = {key[len("model."):]: value for key, value in tensors.items() if key.startswith("model.")}
    if set(weights) != set(layout):
        raise ValueError(f"{where} holds the weights {sorted(set(weights) ^ set(layout))[:5]} that the run's model has not "
                         f"(or lacks ones it has); it belongs to another run. {fix}")
    for key, (shape, dtype) in layout.items():
        if tuple(weights[key].shape) != shape or weights[key].dtype != dtype:
            raise ValueError(f"{where}: weight {key!r} is {weights[key].dtype} {tuple(weights[key].shape)}, but the run's model "
                             f"has {dtype} {shape}; the file belongs to another run. {fix}")
    if optimizer is None:
        return SharedState(after_task, weights, None)
    state: dict[int, dict[str, Any]] = {}
    try:
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                index, _, name = key[len("optimizer."):].partition(".")
                state.setdefault(int(index), {})[name] = value
        for key, value in scalars.items():
            index, _, name = key.partition(".")
            state.setdefault(int(index), {})[name] = value
    except ValueError as err:
        raise ValueError(f"{where}: malformed optimizer entries ({err}). {fix}") from err
    return SharedState(after_task, weights, {"state": state, "param_groups": groups})
