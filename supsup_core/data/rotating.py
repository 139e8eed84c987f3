"""A continuously rotating stream (PSP's "continuous domain shift"): the angle advances a little every step.

Step ``t`` shows images rotated by ``360° · t / steps_per_turn``, so the input distribution never stops
changing and comes back after each full turn. There are no task boundaries: a method decides itself when to
switch context (see ``benchmarks/psp_domain_shift.py``).
"""
from __future__ import annotations

import torch

from supsup_core.checks import check_int
from supsup_core.data.datasets import ImageData
from supsup_core.data.streams import TaskData, rotate_images

__all__ = ["RotatingStream"]


class RotatingStream:
    """Training batches and test images of ``data`` rotated by the angle of a step.

    Parameters
    ----------
    data : ImageData
    steps_per_turn : int
        Steps for a full turn (the PSP paper: 1000).
    device : torch.device or str
    """

    def __init__(self, data: ImageData, *, steps_per_turn: int = 1000, device: torch.device | str = "cpu") -> None:
        check_int(steps_per_turn, "steps_per_turn", minimum=1, fix="Give the steps of one full turn, e.g. 1000.")
        if len(data.train_x.shape) != 4:
            raise ValueError(f"a rotating stream needs images of shape (N, C, H, W); got {tuple(data.train_x.shape)}.")
        self.steps_per_turn = int(steps_per_turn)
        self.device = torch.device(device)
        self.num_classes = data.num_classes
        self.input_shape = tuple(data.train_x.shape[1:])
        self._train = TaskData(torch.from_numpy(data.train_x).to(self.device), torch.from_numpy(data.train_y).to(self.device))
        self._test = TaskData(torch.from_numpy(data.test_x).to(self.device), torch.from_numpy(data.test_y).to(self.device))

    def angle(self, step: int) -> float:
        """Degrees of rotation at ``step``, in [0, 360)."""
        return 360.0 * (step % self.steps_per_turn) / self.steps_per_turn

    def train_batch(self, step: int, *, batch_size: int, generator: torch.Generator) -> TaskData:
        """``batch_size`` training images drawn at random (``generator``, CPU) and rotated by :meth:`angle` of ``step``."""
        idx = torch.randint(0, len(self._train.y), (batch_size,), generator=generator).to(self.device)
        return TaskData(rotate_images(self._train.x.index_select(0, idx), self.angle(step)), self._train.y.index_select(0, idx))

    def test_batch(self, step: int, *, size: int | None = None) -> TaskData:
        """The first ``size`` test images (all by default) rotated by :meth:`angle` of ``step``."""
        n = len(self._test.y) if size is None else min(size, len(self._test.y))
        return TaskData(rotate_images(self._test.x[:n], self.angle(step)), self._test.y[:n])
