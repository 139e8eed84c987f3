"""Masked layers over fixed random weights: per-task scores, and the mask source each forward pass uses.

Every masked layer is in one of three modes, switched through methods (never set from outside):

- ``set_task(t)``: the binary mask of task ``t`` (from its scores, or its frozen mask);
- ``set_superposition(alphas)``: the weighted sum ``Σ_i alphas[i] · M_i`` of the stored task masks
  (``alphas`` may require grad: that is how task inference differentiates the output w.r.t. alphas);
- ``set_mask(mask)``: an externally given mask (HopSupSup recovery passes ``sign(z)`` here).
"""
from __future__ import annotations

import math
import weakref
from typing import Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.nn.fused import MaskSink
from supsup_core.nn.supermask import (
    MaskConfig,
    TopKCut,
    binary_mask,
    compute_mask,
    init_scores_,
    signed_constant_,
)
from supsup_core.nn.task_modules import TaskModule

__all__ = ["MaskedLayer", "MaskedLinear", "MaskedConv2d", "MaskedBatchNorm", "FixedLinear"]


class MaskedLayer(TaskModule):
    """Base of all masked layers: holds one score tensor per task and the current mask source.

    Its per-task state (:class:`~supsup_core.nn.task_modules.TaskModule`) is the task's binary mask,
    ``{"mask": bool tensor of mask_shape}``; a trainable task starts from ``{"scores": ...}`` or a fresh draw.

    Parameters
    ----------
    mask_shape : tuple of int
        Shape of one task's mask (the weight's shape for weight masks, ``(d,)`` for neuron masks).
    num_tasks : int
        Number of tasks to allocate scores for now; more can be added with :meth:`add_task`.
    mask_config : MaskConfig
        How scores become a mask.
    generator : torch.Generator, optional
        Seeds the score initialisation.
    """

    def __init__(
        self,
        *,
        mask_shape: tuple[int, ...],
        num_tasks: int,
        mask_config: MaskConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_tasks < 0:
            raise ValueError(f"num_tasks must be >= 0; got {num_tasks}.")
        self.mask_shape = tuple(int(s) for s in mask_shape)
        self.mask_config = mask_config
        self.scores = nn.ParameterDict()  # task id (as str) -> Parameter of mask_shape
        # follows .to(device) even while the layer holds no task (MaskedBatchNorm has no weight buffer)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self._num_tasks = 0
        self._mode = "task"
        self._task_id = 0
        self._alphas: torch.Tensor | None = None
        self._stacked: torch.Tensor | None = None  # (K, *mask_shape) float masks for superposition
        self._mask: torch.Tensor | None = None
        self._fresh: _FreshMaskedWeight | None = None  # written by a fused optimizer step (see mask_sink)
        self._cuts: dict[str, TopKCut] = {}  # last top-k cut per trainable task: the next is found near it
        for _ in range(num_tasks):
            self.add_task(generator=generator)

    # ----------------------------------------------------------------- tasks
    @property
    def num_tasks(self) -> int:
        """Number of tasks this layer holds scores or a frozen mask for."""
        return self._num_tasks

    @property
    def mask_numel(self) -> int:
        return math.prod(self.mask_shape)

    def add_task(self, init: Mapping[str, torch.Tensor] | None = None, *,
                 generator: torch.Generator | None = None) -> int:
        """Allocate scores for one more task and return its task id.

        ``init = {"scores": tensor of mask_shape}`` starts the new task elsewhere, e.g. at the running mean
        of earlier tasks' scores (transfer); otherwise the config's ``score_init`` draws from ``generator``.
        """
        if init is not None and set(init) != {"scores"}:
            raise ValueError(f"a masked layer starts a task from {{'scores': tensor}}; got keys {sorted(init)}.")
        init_scores = None if init is None else init["scores"]
        device = self._device()
        if init_scores is not None:
            if tuple(init_scores.shape) != self.mask_shape:
                raise ValueError(f"init_scores must have shape {self.mask_shape}; got {tuple(init_scores.shape)}.")
            scores = init_scores.detach().to(device, torch.float32).clone()
        else:
            # Draw on the generator's device so a CPU generator seeds CUDA layers identically.
            draw_on = generator.device if generator is not None else device
            scores = torch.empty(self.mask_shape, device=draw_on)
            init_scores_(scores, self.mask_config.score_init, generator=generator)
            scores = scores.to(device)
        task_id = self._num_tasks
        self.scores[str(task_id)] = nn.Parameter(scores)
        self._num_tasks += 1
        self._stacked = None
        return task_id

    def task_scores(self, task_id: int) -> nn.Parameter:
        """The trainable scores of ``task_id`` (an error once the task is frozen)."""
        self._check_task(task_id)
        key = str(task_id)
        if key not in self.scores:
            raise ValueError(f"task {task_id} is frozen: its scores were dropped and only its mask is kept.")
        return self.scores[key]

    def freeze_task(self, task_id: int, mask: torch.Tensor | None = None) -> None:
        """Keep only the binary mask of ``task_id`` and drop its scores (memory: 1 byte per entry).

        ``mask`` sets the frozen mask directly (e.g. loaded from a run directory); by default it is
        computed from the task's scores.
        """
        self._check_task(task_id)
        if mask is None:
            mask = self.task_mask(task_id)
        if tuple(mask.shape) != self.mask_shape:
            raise ValueError(f"mask for task {task_id} must have shape {self.mask_shape}; got {tuple(mask.shape)}.")
        self.register_buffer(f"frozen_mask_{task_id}", mask.detach().to(self._device(), torch.bool))
        if str(task_id) in self.scores:
            del self.scores[str(task_id)]
        self._stacked = None
        self._fresh = None
        self._cuts.pop(str(task_id), None)

    def add_frozen_task(self, state: Mapping[str, torch.Tensor]) -> int:
        """Append a task known only by its binary mask, ``{"mask": tensor of mask_shape}`` (loading a run)."""
        if set(state) != {"mask"}:
            raise ValueError(f"a masked layer's frozen task is {{'mask': tensor}}; got keys {sorted(state)}.")
        mask = state["mask"]
        if tuple(mask.shape) != self.mask_shape:
            raise ValueError(f"mask must have shape {self.mask_shape}; got {tuple(mask.shape)}.")
        task_id = self._num_tasks
        self._num_tasks += 1
        self.freeze_task(task_id, mask)
        return task_id

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        """``{"mask": bool tensor of mask_shape}``: what a run keeps of ``task_id``."""
        return {"mask": self.task_mask(task_id).bool()}

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        """The scores of ``task_id`` while it is trainable, else nothing."""
        self._check_task(task_id)
        return [self.scores[str(task_id)]] if str(task_id) in self.scores else []

    @torch.no_grad()
    def task_mask(self, task_id: int) -> torch.Tensor:
        """The binary mask of ``task_id`` as a float tensor of ``mask_shape`` holding 0 and 1 (no grad)."""
        self._check_task(task_id)
        frozen = getattr(self, f"frozen_mask_{task_id}", None)
        if frozen is not None:
            return frozen.float()
        return compute_mask(self.scores[str(task_id)].detach(), self.mask_config, self._cut(task_id))

    def task_masks(self) -> torch.Tensor:
        """All task masks stacked: float tensor of shape ``(num_tasks, *mask_shape)``."""
        if self._num_tasks == 0:
            raise ValueError("this layer holds no tasks yet; call add_task() first")
        return torch.stack([self.task_mask(t) for t in range(self._num_tasks)])

    # ----------------------------------------------------------------- modes
    def set_task(self, task_id: int) -> None:
        """Use the mask of ``task_id`` in the forward pass."""
        self._check_task(task_id)
        self._mode, self._task_id = "task", int(task_id)
        self._alphas = self._mask = None

    def set_superposition(self, alphas: torch.Tensor, masks: torch.Tensor | None = None) -> None:
        """Use ``Σ_i alphas[i] · masks[i]`` in the forward pass.

        Parameters
        ----------
        alphas : Tensor of shape (K,)
            Mixing weights; may require grad.
        masks : Tensor of shape (K, *mask_shape), optional
            Masks to superpose; by default this layer's task masks (cached while every task is frozen;
            recomputed while any task still has trainable scores, which may have changed).
        """
        if masks is None:
            if self._stacked is None or len(self.scores) > 0 or self._stacked.device != self._device():
                self._stacked = self.task_masks()
            masks = self._stacked
        if alphas.dim() != 1 or alphas.shape[0] != masks.shape[0]:
            raise ValueError(f"alphas must have shape ({masks.shape[0]},), one weight per mask; got {tuple(alphas.shape)}.")
        if tuple(masks.shape[1:]) != self.mask_shape:
            raise ValueError(f"masks must have shape (K, {', '.join(map(str, self.mask_shape))}); got {tuple(masks.shape)}.")
        self._mode, self._alphas, self._mask = "superposition", alphas, masks

    def set_mask(self, mask: torch.Tensor) -> None:
        """Use ``mask`` (shape ``mask_shape``, may require grad) in the forward pass."""
        if tuple(mask.shape) != self.mask_shape:
            raise ValueError(f"mask must have shape {self.mask_shape}; got {tuple(mask.shape)}.")
        self._mode, self._mask, self._alphas = "mask", mask, None

    @property
    def mode(self) -> str:
        """``"task"``, ``"superposition"`` or ``"mask"``."""
        return self._mode

    def current_mask(self) -> torch.Tensor:
        """The mask the next forward pass uses (differentiable w.r.t. scores, alphas or the given mask)."""
        if self._mode == "task":
            key = str(self._task_id)
            if key in self.scores:
                return compute_mask(self.scores[key], self.mask_config, self._cut(self._task_id))
            return getattr(self, f"frozen_mask_{self._task_id}").float()
        if self._mode == "superposition":
            return torch.tensordot(self._alphas, self._mask, dims=1)
        return self._mask

    def mask_sink(self, task_id: int) -> MaskSink | None:
        """Where :class:`supsup_core.nn.fused.FusedRMSprop` may send task ``task_id``'s next masked weight.

        None here: only :class:`MaskedLinear` with threshold masks takes one (see its override).
        """
        return None

    def clear_fresh_masked_weight(self) -> None:
        """Forget the masked weight the last fused step wrote; the next forward computes its own.

        Training calls this when it ends: a stale entry is caught by the scores' version counter, but an
        edit through ``scores.data`` bypasses that counter.
        """
        self._fresh = None

    # ----------------------------------------------------------------- helpers
    def _check_task(self, task_id: int) -> None:
        if not 0 <= int(task_id) < self._num_tasks:
            raise ValueError(
                f"task_id {task_id} is out of range: this layer holds {self._num_tasks} task(s) (ids 0..{self._num_tasks - 1}). "
                "Add a task with add_task() first."
            )

    def _device(self) -> torch.device:
        return self._device_probe.device

    def _cut(self, task_id: int) -> TopKCut:
        return self._cuts.setdefault(str(task_id), TopKCut())


class _WeightMasked(MaskedLayer):
    """A masked layer whose mask covers a fixed, signed-constant weight (a buffer: never trained)."""

    def __init__(self, *, weight_shape, num_tasks, mask_config, generator) -> None:
        super().__init__(mask_shape=weight_shape, num_tasks=0, mask_config=mask_config)
        self.register_buffer("weight", signed_constant_(torch.empty(weight_shape), generator=generator))
        for _ in range(num_tasks):
            self.add_task(generator=generator)

    def masked_weight(self) -> torch.Tensor:
        """``weight ⊙ current_mask()``."""
        return self.weight * self.current_mask()


class _FreshMaskedWeight(NamedTuple):
    """``W ⊙ M`` of ``task_id`` as a fused step wrote it, valid while the scores are unchanged since."""

    task_id: int
    scores: weakref.ref
    stamp: tuple[int, int, int, int]  # the scores' and weight's version counters and storage, after the step
    masked: torch.Tensor

    @staticmethod
    def stamp_of(scores: torch.Tensor, weight: torch.Tensor) -> tuple[int, int, int, int]:
        return scores._version, weight._version, scores.data_ptr(), weight.data_ptr()

    def get(self, task_id: int, scores: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
        # Stale after any in-place change of the scores or weight (another optimizer, load_state_dict, a
        # manual edit: the version counter moves), a swap of their storage (``.data = ...``,
        # vector_to_parameters), a new Parameter or another device.
        fresh = task_id == self.task_id and self.scores() is scores and self.stamp_of(scores, weight) == self.stamp
        return self.masked if fresh and self.masked.device == scores.device else None


class _TaskMaskedLinear(torch.autograd.Function):
    """``x (W ⊙ M)ᵀ`` with the straight-through gradient ``∂L/∂scores = (gᵀ x) ⊙ W`` computed in place.

    The masked weight comes ready from the last fused optimizer step when there is one (``masked``);
    otherwise it takes two vectorised passes (mask into a float buffer, times ``W`` in place), no boolean
    tensor or dtype promotion. ``grad_x`` is only computed when the input needs it (never for the first
    layer).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scores: torch.Tensor, weight: torch.Tensor, config: MaskConfig,
                masked: torch.Tensor | None, cut: TopKCut) -> torch.Tensor:
        if masked is None:
            masked = binary_mask(scores.detach(), config, cut=cut).mul_(weight)  # (out, in)
        ctx.save_for_backward(x, weight, masked)
        return F.linear(x, masked)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, weight, masked = ctx.saved_tensors
        grad_x = grad_scores = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_output.matmul(masked)
        if ctx.needs_input_grad[1]:
            g2 = grad_output.reshape(-1, grad_output.shape[-1])  # (N, out)
            grad_scores = g2.t().mm(x.reshape(-1, x.shape[-1])).mul_(weight)  # (out, in)
        return grad_x, grad_scores, None, None, None, None


class MaskedLinear(_WeightMasked):
    """``y = x (W ⊙ M)ᵀ`` with fixed signed-constant ``W`` (no bias) and per-task binary masks ``M``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        num_tasks: int = 1,
        mask_config: MaskConfig = MaskConfig(),
        generator: torch.Generator | None = None,
    ) -> None:
        self.in_features, self.out_features = int(in_features), int(out_features)
        super().__init__(weight_shape=(out_features, in_features), num_tasks=num_tasks, mask_config=mask_config, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = str(self._task_id)
        if self._mode == "task" and key in self.scores:
            # Training path: one fused op; autograd keeps only x and the masked weight, not the mask.
            scores = self.scores[key]
            masked = None if self._fresh is None else self._fresh.get(self._task_id, scores, self.weight)
            return _TaskMaskedLinear.apply(x, scores, self.weight, self.mask_config, masked, self._cut(self._task_id))
        return F.linear(x, self.masked_weight())

    def mask_sink(self, task_id: int) -> MaskSink | None:
        """Where a fused optimizer step sends ``W ⊙ (scores >= 0)`` of ``task_id``, which the next forward then uses.

        None for top-k masks (the kernel only knows the threshold rule) and for frozen tasks.
        """
        self._check_task(task_id)
        key = str(task_id)
        if self.mask_config.kind != "threshold" or key not in self.scores:
            return None
        scores, weight = self.scores[key], self.weight

        def write(masked: torch.Tensor) -> None:
            # masked was computed from `weight`; if the buffer was replaced since, keep nothing
            fresh = weight is self.weight
            stamp = _FreshMaskedWeight.stamp_of(scores, weight)
            self._fresh = _FreshMaskedWeight(int(task_id), weakref.ref(scores), stamp, masked) if fresh else None

        return MaskSink(weight, write)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, tasks={self.num_tasks}, mask={self.mask_config.kind}"


class MaskedConv2d(_WeightMasked):
    """2-D convolution with fixed signed-constant weights (no bias) and per-task binary masks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        num_tasks: int = 1,
        mask_config: MaskConfig = MaskConfig(),
        generator: torch.Generator | None = None,
    ) -> None:
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        super().__init__(weight_shape=shape, num_tasks=num_tasks, mask_config=mask_config, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, p={self.padding}, "
            f"tasks={self.num_tasks}, mask={self.mask_config.kind}"
        )


class MaskedBatchNorm(MaskedLayer):
    """BatchNorm without affine parameters or running statistics, then a per-task neuron mask.

    The mask has shape ``(num_features,)`` and multiplies channel/feature ``j`` of the normalised
    input; this is the layer HopSupSup masks. Default mask: threshold (scores >= 0) with zero-initialised
    scores, i.e. every neuron on at the start of a task.
    """

    def __init__(
        self,
        num_features: int,
        *,
        num_tasks: int = 1,
        mask_config: MaskConfig = MaskConfig(kind="threshold", score_init="zeros"),
        eps: float = 1e-5,
        generator: torch.Generator | None = None,
    ) -> None:
        self.num_features, self.eps = int(num_features), float(eps)
        super().__init__(mask_shape=(num_features,), num_tasks=num_tasks, mask_config=mask_config, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Batch statistics always (no running stats), as in the reference HopSupSup model.
        normed = F.batch_norm(x, None, None, training=True, eps=self.eps)
        mask = self.current_mask()
        return normed * mask.view(1, -1, *([1] * (x.dim() - 2)))

    def extra_repr(self) -> str:
        return f"{self.num_features}, tasks={self.num_tasks}, mask={self.mask_config.kind}"


class FixedLinear(nn.Module):
    """``y = x Wᵀ`` with a fixed signed-constant weight (a buffer, no bias, no mask): BNNet's dense layers."""

    def __init__(self, in_features: int, out_features: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.register_buffer("weight", signed_constant_(torch.empty(out_features, in_features), generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, fixed"
