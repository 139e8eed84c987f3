"""A task as a run stores it: every task module's ``task_state``, as safetensors tensors and metadata.

Boolean tensors are bit-packed as ``bits.<module>.<key>`` (uint8, ``ceil(numel/8)``) with their shape and
density in the ``bits`` metadata; other tensors are ``state.<module>.<key>``; the ``modules`` metadata lists
every task module, also one whose state is empty. Format 2 (masks as ``mask.<layer>`` described by a
``masks`` entry) is read as well.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from hopfield_masks.patterns import pack_bits, unpack_bits
from supsup_core.nn.task_modules import task_modules

__all__ = ["TaskState", "task_state_tensors", "task_state_from_tensors"]


class TaskState(NamedTuple):
    """One task as stored: each task module's ``task_state`` by module name (boolean tensors as bool)."""

    modules: dict[str, dict[str, torch.Tensor]]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """The binary supermasks by masked layer name (the modules whose state is ``{"mask": ...}``)."""
        return {name: state["mask"] for name, state in self.modules.items() if "mask" in state}


def task_state_tensors(model: nn.Module, task_id: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata entries (``bits``, ``modules``) that store task ``task_id`` of ``model``.

    Raises ``ValueError`` before anything is written if a module names a piece of its state with a key
    the file could not tell apart from the module's name.
    """
    tensors, bits, names = {}, {}, list(task_modules(model))
    for name, module in task_modules(model).items():
        for key, value in module.task_state(task_id).items():
            if not isinstance(key, str) or not key or "." in key:
                raise ValueError(f"task module {name!r} ({type(module).__name__}) names a piece of its task_state {key!r}; "
                                 "keys must be non-empty strings without '.' (the file joins module and key with one). "
                                 "Rename it in the module's task_state and add_frozen_task.")
            if value.dtype == torch.bool:
                tensors[f"bits.{name}.{key}"] = pack_bits(value.flatten().to(torch.uint8))
                bits[f"{name}.{key}"] = {"shape": list(value.shape), "density": float(value.float().mean())}
            else:
                tensors[f"state.{name}.{key}"] = value
    return tensors, {"bits": json.dumps(bits), "modules": json.dumps(names)}


def task_state_from_tensors(tensors: dict[str, torch.Tensor], meta: dict[str, str], *, where: Path, fix: str) -> TaskState:
    """Parse a task file's tensors and metadata (format 2 or 3, by ``meta["format_version"]``).

    ``where`` names the file and ``fix`` ends every error (``ValueError``) about a malformed file.
    """
    if meta["format_version"] == "2":  # masks as "mask.<layer>", described by a "masks" entry
        meta = {**meta, "bits": meta.get("masks", "")}
        tensors = {f"bits.{k[len('mask.'):]}.mask" if k.startswith("mask.") else k: v for k, v in tensors.items()}
    try:
        layout = json.loads(meta.get("bits", ""))
    except json.JSONDecodeError:
        layout = None
    if meta["format_version"] == "2" and isinstance(layout, dict):
        layout = {f"{name}.mask": info for name, info in layout.items()}
    if not isinstance(layout, dict) or not all(
            isinstance(info, dict) and isinstance(info.get("shape"), list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in info["shape"])
            for info in layout.values()):
        raise ValueError(f"{where}: its 'bits' metadata must map each packed tensor to {{'shape': [...], 'density': ...}}; "
                         f"got {meta.get('bits')!r:.100}. The file is corrupted. {fix}")
    try:
        names = json.loads(meta["modules"]) if "modules" in meta else []  # format 2: modules follow from the tensors
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: its 'modules' metadata must list the task modules' names; got {meta.get('modules')!r:.100}. "
                         f"The file is corrupted. {fix}")
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in names}
    for full, info in layout.items():
        numel = math.prod(info["shape"])
        packed = tensors.get(f"bits.{full}")
        if packed is None or packed.dtype != torch.uint8 or packed.numel() != math.ceil(numel / 8):
            raise ValueError(f"{where}: packed tensor {full!r} is missing or has the wrong size; the file is corrupted. {fix}")
        module, _, key = full.rpartition(".")
        modules.setdefault(module, {})[key] = unpack_bits(packed, numel).bool().view(info["shape"])
    for full, value in tensors.items():
        if full.startswith("state."):
            module, _, key = full[len("state."):].rpartition(".")
            modules.setdefault(module, {})[key] = value
        elif not (full.startswith("bits.") and full[len("bits."):] in layout):
            raise ValueError(f"{where} holds a tensor {full!r} that its metadata does not describe; the file is corrupted. {fix}")
    return TaskState(modules)
