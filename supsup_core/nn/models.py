"""Supermask models over fixed random weights, chosen by name from the MODELS registry."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from supsup_core.checks import check_choice, check_finite, check_int
from supsup_core.nn import modes
from supsup_core.nn.layers import FixedLinear, MaskedBatchNorm, MaskedLinear
from supsup_core.nn.resnets import ResNet18, ResNet50
from supsup_core.nn.supermask import MASK_KINDS, SCORE_INITS, MaskConfig

__all__ = ["ModelConfig", "FCNet", "BNNet", "MODELS", "DEFAULT_WIDTHS", "FC_MODELS", "fc_hidden_sizes", "build_model"]

# Default width per model: first hidden layer (lenet, fc1024, bnnet) or base channels (resnets).
DEFAULT_WIDTHS = {"lenet": 300, "fc1024": 1024, "bnnet": 2048, "resnet18": 20, "resnet50": 64}
# Default mask per model: (kind, score_init). BNNet's neuron masks are SupSup's HopSupSup masks.
DEFAULT_MASKS = {
    "lenet": ("threshold", "kaiming_uniform"),
    "fc1024": ("threshold", "kaiming_uniform"),
    "bnnet": ("threshold", "zeros"),
    "resnet18": ("topk", "kaiming_uniform"),
    "resnet50": ("topk", "kaiming_uniform"),
}


@dataclass(frozen=True)
class ModelConfig:
    """What to build: architecture, sizes and masks. Round-trips through JSON (:meth:`to_dict`).

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``; fully connected models flatten it.
    output_size : int
        Number of output units (more than the classes gives "superfluous" neurons).
    num_tasks : int
        Tasks to allocate scores for at build time (more can be added with ``modes.add_task``).
    width : int, optional
        First hidden width, or base channels of the ResNets; default :data:`DEFAULT_WIDTHS`.
    mask_kind : {"topk", "threshold"}, optional
        Default per model (:data:`DEFAULT_MASKS`).
    density : float
        Fraction kept by top-k masks (the reference code's ``sparsity``).
    score_init : {"kaiming_uniform", "zeros"}, optional
        Default per model.
    """

    name: str
    input_shape: tuple[int, ...] = (1, 28, 28)
    output_size: int = 10
    num_tasks: int = 1
    width: int | None = None
    mask_kind: str | None = None
    density: float = 0.5
    score_init: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.name, "model name", MODELS, "Pick a model from supsup_core.nn.models.MODELS.")
        if isinstance(self.input_shape, (str, bytes)) or not hasattr(self.input_shape, "__iter__"):
            raise TypeError(f"input_shape must be a sequence of ints such as (1, 28, 28); got {self.input_shape!r}.")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not self.input_shape:
            raise ValueError("input_shape must hold at least one size, e.g. (1, 28, 28); got ().")
        for size in self.input_shape:
            check_int(size, "input_shape entries", minimum=1, fix=f"Give whole sizes, e.g. (1, 28, 28); got input_shape={self.input_shape}.")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        check_int(self.output_size, "output_size", minimum=1, fix="Give a whole number of outputs, e.g. --output-size 10.")
        check_int(self.num_tasks, "num_tasks", minimum=0, fix="Give a whole number of tasks to allocate, e.g. 1.")
        if self.width is not None:
            check_int(self.width, "width", minimum=1, fix="Give a whole width, e.g. --width 300, or leave it out for the model's default.")
        check_finite(self.density, "density", "Give the fraction of weights kept, e.g. --density 0.5.")
        if self.mask_kind is not None:
            check_choice(self.mask_kind, "mask_kind", MASK_KINDS)
        if self.score_init is not None:
            check_choice(self.score_init, "score_init", SCORE_INITS)
        self.mask_config()  # validates density

    def resolved_width(self) -> int:
        """The width used: ``width`` or the model's default."""
        return self.width if self.width is not None else DEFAULT_WIDTHS[self.name]

    def mask_config(self) -> MaskConfig:
        """The masked layers' :class:`MaskConfig` (model defaults filled in)."""
        kind, init = DEFAULT_MASKS[self.name]
        return MaskConfig(kind=self.mask_kind or kind, density=self.density, score_init=self.score_init or init)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (``sparsity``, written before format 3, is ``density``)."""
        data = dict(data)
        if "sparsity" in data and "density" not in data:
            data["density"] = data.pop("sparsity")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"model config has unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}.")
        return cls(**dict(data))


class FCNet(nn.Module):
    """Fully connected ReLU network with weight supermasks on every layer (LeNet 784-300-100, FC 784-1024-1024).

    Input: Tensor of shape (N, *input_shape), flattened; output: (N, output_size) logits.
    """

    def __init__(self, *, in_features: int, hidden: tuple[int, ...], output_size: int, mask_config: MaskConfig,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        sizes = (in_features, *hidden, output_size)
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, num_tasks=0, mask_config=mask_config, generator=generator) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)


class BNNet(nn.Module):
    """HopSupSup's model: fixed dense layers, neuron masks on affine-free BatchNorms, Swish.

    ``in → width → BN-mask → Swish → width → BN-mask → Swish → output_size``. Only the two
    :class:`MaskedBatchNorm` layers are task specific (d = width each).
    """

    def __init__(self, *, in_features: int, width: int, output_size: int, mask_config: MaskConfig,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.fc1 = FixedLinear(in_features, width, generator=generator)
        self.bn1 = MaskedBatchNorm(width, num_tasks=0, mask_config=mask_config)
        self.fc2 = FixedLinear(width, width, generator=generator)
        self.bn2 = MaskedBatchNorm(width, num_tasks=0, mask_config=mask_config)
        self.out = FixedLinear(width, output_size, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.silu(self.bn1(self.fc1(x.flatten(1))))
        x = nn.functional.silu(self.bn2(self.fc2(x)))
        return self.out(x)


FC_MODELS = ("lenet", "fc1024")
"""The fully connected architectures: :func:`fc_hidden_sizes` gives their hidden widths."""


def fc_hidden_sizes(config: ModelConfig) -> tuple[int, ...]:
    """Hidden widths of a fully connected model: LeNet ``(w, w // 3)`` (300-100), FC 1024 ``(w, w)``."""
    check_choice(config.name, "fully connected model", FC_MODELS)
    width = config.resolved_width()
    return (width, max(1, width // 3)) if config.name == "lenet" else (width, width)


def _fcnet(config: ModelConfig, generator: torch.Generator | None) -> nn.Module:
    return FCNet(in_features=math.prod(config.input_shape), hidden=fc_hidden_sizes(config),
                 output_size=config.output_size, mask_config=config.mask_config(), generator=generator)


def _bnnet(config: ModelConfig, generator: torch.Generator | None) -> nn.Module:
    return BNNet(in_features=math.prod(config.input_shape), width=config.resolved_width(),
                 output_size=config.output_size, mask_config=config.mask_config(), generator=generator)


def _resnet(cls) -> Callable[[ModelConfig, torch.Generator | None], nn.Module]:
    def build(config: ModelConfig, generator: torch.Generator | None) -> nn.Module:
        if len(config.input_shape) != 3:
            raise ValueError(
                f"{config.name} needs image inputs of shape (C, H, W); got input_shape {config.input_shape}. "
                "Use an image stream or a fully connected model."
            )
        return cls(in_channels=config.input_shape[0], width=config.resolved_width(), output_size=config.output_size,
                   mask_config=config.mask_config(), generator=generator)

    return build


MODELS: dict[str, Callable[[ModelConfig, torch.Generator | None], nn.Module]] = {
    "lenet": _fcnet,
    "fc1024": _fcnet,
    "bnnet": _bnnet,
    "resnet18": _resnet(ResNet18),
    "resnet50": _resnet(ResNet50),
}


def build_model(config: ModelConfig, generator: torch.Generator | None = None) -> nn.Module:
    """Build ``config``'s model with ``config.num_tasks`` tasks allocated.

    The fixed weights are drawn first, in definition order, so they depend only on ``generator``'s seed
    and never on the number of tasks; task scores are drawn after them.

    Parameters
    ----------
    config : ModelConfig
    generator : torch.Generator, optional
        CPU generator seeding weights and scores.

    Returns
    -------
    nn.Module on the CPU; move it with ``.to(device)``.
    """
    model = MODELS[config.name](config, generator)
    for _ in range(config.num_tasks):
        modes.add_task(model, generator=generator)
    return model
