"""Task streams over one image dataset: PermutedMNIST, RotatedMNIST and SplitMNIST, kept as tensors on the device."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from supsup_core.checks import check_choice, check_finite, check_fraction, check_int
from supsup_core.data.datasets import ImageData, load_data

__all__ = ["StreamConfig", "TaskData", "TaskStream", "PermutedStream", "RotatedStream", "SplitStream", "STREAMS", "build_stream",
           "rotate_images"]

SPLITS = ("train", "test")


class TaskData(NamedTuple):
    """One task's samples on the device: ``x`` of shape (N, *input_shape), ``y`` of shape (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor


class TaskStream:
    """A sequence of tasks built from one dataset; subclasses say how task ``t`` transforms or selects it.

    Parameters
    ----------
    data : ImageData
    num_tasks : int
    device : torch.device
        Where every tensor lives; batches are drawn by indexing on the device (no per-sample loader).
    """

    name = "stream"
    cache_bytes = 256 * 2**20  # built task sets kept per stream (about 40 MNIST-size test sets of 2000 images)

    def __init__(self, *, data: ImageData, num_tasks: int, device: torch.device | str = "cpu") -> None:
        check_int(num_tasks, "num_tasks", minimum=1, fix="Give a whole number of tasks, e.g. num_tasks=5.")
        self.num_tasks = int(num_tasks)
        self.device = torch.device(device)
        self.num_classes = data.num_classes
        self.input_shape = tuple(data.train_x.shape[1:])
        self.note = data.note
        self._base = {
            "train": TaskData(torch.from_numpy(data.train_x).to(self.device), torch.from_numpy(data.train_y).to(self.device)),
            "test": TaskData(torch.from_numpy(data.test_x).to(self.device), torch.from_numpy(data.test_y).to(self.device)),
        }
        self._cache: dict[tuple[int, str], TaskData] = {}

    @classmethod
    def from_config(cls, config: "StreamConfig", data: ImageData, device: torch.device | str) -> "TaskStream":
        """Build this stream from a :class:`StreamConfig` (each stream takes the fields it needs)."""
        return cls(data=data, num_tasks=config.num_tasks, device=device)

    def _make(self, task_id: int, base: TaskData) -> TaskData:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_data(self, task_id: int, split: str) -> TaskData:
        """All samples of ``task_id`` in ``split`` (``"train"`` or ``"test"``).

        Built sets are kept, least recently used dropped first, up to :attr:`cache_bytes` (and always the last
        two), so evaluating every earlier task after each new one does not rebuild them each time.
        """
        if not 0 <= task_id < self.num_tasks:
            raise ValueError(f"task_id {task_id} is out of range: this stream has {self.num_tasks} task(s) (ids 0..{self.num_tasks - 1}).")
        check_choice(split, "split", SPLITS)
        key = (int(task_id), split)
        if key in self._cache:
            self._cache[key] = self._cache.pop(key)  # most recently used last
            return self._cache[key]
        made = self._make(int(task_id), self._base[split])
        # least recently used first out, while over budget (two entries always fit: a train set and a test set)
        while len(self._cache) >= 2 and _nbytes(made) + sum(map(_nbytes, self._cache.values())) > self.cache_bytes:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = made
        return made

    def test_set(self, task_id: int) -> TaskData:
        """The test samples of ``task_id``."""
        return self.task_data(task_id, "test")

    def train_batches(self, task_id: int, *, batch_size: int, num_batches: int, generator: torch.Generator) -> Iterator[TaskData]:
        """``num_batches`` shuffled training batches of ``task_id``, drawn epoch after epoch without replacement.

        Parameters
        ----------
        batch_size : int
            Samples per batch (capped at the task's size).
        num_batches : int
        generator : torch.Generator
            CPU generator for the shuffles, so batches are the same on every device.

        Yields
        ------
        TaskData with ``x`` of shape (batch_size, *input_shape)
        """
        data = self.task_data(task_id, "train")
        n = len(data.y)
        if n == 0:
            raise ValueError(f"task {task_id} of {self.name} has no training samples, so there is nothing to train on; "
                             "check the data (every task needs samples) or use fewer tasks.")
        batch_size = min(int(batch_size), n)
        order, pos = torch.empty(0, dtype=torch.long), 0
        for _ in range(num_batches):
            if pos + batch_size > len(order):  # next epoch: keep the unused tail, append a fresh shuffle
                order = torch.cat([order[pos:], torch.randperm(n, generator=generator)])
                pos = 0
            idx = order[pos: pos + batch_size].to(self.device, non_blocking=True)
            pos += batch_size
            yield TaskData(data.x.index_select(0, idx), data.y.index_select(0, idx))

    def num_train(self, task_id: int) -> int:
        """Number of training samples of ``task_id``."""
        return len(self.task_data(task_id, "train").y)


def _nbytes(data: TaskData) -> int:
    return data.x.numel() * data.x.element_size() + data.y.numel() * data.y.element_size()


class PermutedStream(TaskStream):
    """Task ``t`` permutes the pixels by the ``t``-th permutation drawn from ``RandomState(seed)``."""

    name = "permuted-mnist"

    def __init__(self, *, data: ImageData, num_tasks: int, seed: int, device: torch.device | str = "cpu") -> None:
        super().__init__(data=data, num_tasks=num_tasks, device=device)
        rs = np.random.RandomState(seed)
        d = math.prod(self.input_shape)
        self.permutations = torch.from_numpy(np.stack([rs.permutation(d) for _ in range(num_tasks)])).to(self.device)

    @classmethod
    def from_config(cls, config: "StreamConfig", data: ImageData, device: torch.device | str) -> "PermutedStream":
        return cls(data=data, num_tasks=config.num_tasks, seed=config.seed, device=device)

    def _make(self, task_id: int, base: TaskData) -> TaskData:
        x = base.x.flatten(1).index_select(1, self.permutations[task_id]).view(base.x.shape)
        return TaskData(x, base.y)


class RotatedStream(TaskStream):
    """Task ``t`` rotates every image by ``t · angle_step`` degrees (bilinear, zero padding)."""

    name = "rotated-mnist"

    def __init__(self, *, data: ImageData, num_tasks: int, angle_step: float = 10.0, device: torch.device | str = "cpu") -> None:
        super().__init__(data=data, num_tasks=num_tasks, device=device)
        self.angle_step = float(angle_step)

    @classmethod
    def from_config(cls, config: "StreamConfig", data: ImageData, device: torch.device | str) -> "RotatedStream":
        return cls(data=data, num_tasks=config.num_tasks, angle_step=config.angle_step, device=device)

    def _make(self, task_id: int, base: TaskData) -> TaskData:
        return TaskData(rotate_images(base.x, task_id * self.angle_step), base.y)


def rotate_images(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Images ``x`` of shape (N, C, H, W) rotated by ``degrees`` (bilinear), on their device, in one batch.

    The background is the images' darkest value (a black pixel, standardised), so rotation adds no border.
    """
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    affine = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], device=x.device, dtype=x.dtype).expand(len(x), 2, 3)
    floor = x.amin()
    grid = F.affine_grid(affine, list(x.shape), align_corners=False)
    return F.grid_sample(x - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + floor


class SplitStream(TaskStream):
    """Task ``t`` holds the classes ``{2t, 2t+1}`` with their original labels (one 10-way head serves all)."""

    name = "split-mnist"

    def __init__(self, *, data: ImageData, num_tasks: int, device: torch.device | str = "cpu") -> None:
        if num_tasks > data.num_classes // 2:
            raise ValueError(
                f"SplitMNIST has {data.num_classes // 2} class pairs, so at most {data.num_classes // 2} tasks; "
                f"got num_tasks={num_tasks}. Use --num-tasks {data.num_classes // 2} or fewer."
            )
        super().__init__(data=data, num_tasks=num_tasks, device=device)
        for split, labels in (("train", data.train_y), ("test", data.test_y)):
            present = set(np.unique(labels).tolist())
            for task_id in range(self.num_tasks):
                classes = self.task_classes(task_id)
                if not present.intersection(classes):
                    raise ValueError(
                        f"split-mnist task {task_id} (classes {classes[0]} and {classes[1]}) has no {split} samples: "
                        f"{data.source} holds no images of either class in its {split} split (classes present: "
                        f"{sorted(present)}). Use data with every digit"
                        + (f", or --num-tasks {task_id} or fewer." if task_id > 0 else ".")
                    )

    def task_classes(self, task_id: int) -> tuple[int, int]:
        """The two labels of ``task_id``."""
        return 2 * task_id, 2 * task_id + 1

    def _make(self, task_id: int, base: TaskData) -> TaskData:
        a, b = self.task_classes(task_id)
        keep = ((base.y == a) | (base.y == b)).nonzero().squeeze(1)
        return TaskData(base.x.index_select(0, keep), base.y.index_select(0, keep))


STREAMS = {"permuted-mnist": PermutedStream, "rotated-mnist": RotatedStream, "split-mnist": SplitStream}


@dataclass(frozen=True)
class StreamConfig:
    """Which stream to build, on which data. Round-trips through JSON (:meth:`to_dict`).

    Parameters
    ----------
    dataset : str
        A key of :data:`STREAMS`.
    num_tasks : int
    data_dir : str, optional
        Folder of MNIST IDX files; ``None`` means scikit-learn's built-in digits.
    seed : int
        Seeds the task definitions (the permutations of PermutedMNIST): ``supsup train --data-seed``, by
        default the run's ``--seed``. The run's own seed (weights, scores, batch order) is separate.
    angle_step : float
        Degrees between RotatedMNIST tasks.
    test_fraction : float
        Share held out for testing where the data has one split only.
    """

    dataset: str
    num_tasks: int
    data_dir: str | None = None
    seed: int = 0
    angle_step: float = 10.0
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_choice(self.dataset, "dataset", STREAMS, "Pick a task stream from supsup_core.data.streams.STREAMS.")
        check_int(self.num_tasks, "num_tasks", minimum=1, fix="Give a whole number of tasks, e.g. --num-tasks 5.")
        check_int(self.seed, "seed", minimum=0, fix="Give a whole, non-negative seed, e.g. --data-seed 0.")
        if self.seed >= 2**32:
            raise ValueError(f"seed must be < 2**32 (it seeds numpy's RandomState); got {self.seed}. Give a smaller --data-seed "
                             "(or --seed, which it defaults to).")
        check_finite(self.angle_step, "angle_step", "Give the degrees between tasks, e.g. --angle-step 10.")
        check_fraction(self.test_fraction, "test_fraction", "Give the held-out share, e.g. 0.2.")
        if self.data_dir is not None:  # stored as a str so the config stays JSON
            if not isinstance(self.data_dir, (str, os.PathLike)):
                raise TypeError(f"data_dir must be a folder path (str or os.PathLike) or None; got {self.data_dir!r}. "
                                "Pass the folder holding the MNIST IDX files, or None for the built-in digits.")
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StreamConfig":
        return cls(**dict(data))


def build_stream(config: StreamConfig, device: torch.device | str = "cpu", data: ImageData | None = None) -> TaskStream:
    """Load the data (unless given) and build ``config``'s stream with every tensor on ``device``."""
    data = data if data is not None else load_data(config.data_dir, test_fraction=config.test_fraction)
    return STREAMS[config.dataset].from_config(config, data, device)
