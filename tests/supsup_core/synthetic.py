"""Small synthetic MNIST-like IDX files for tests: each class lights up its own band of rows."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from supsup_core.data.idx import write_idx


def synthetic_images(n: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of shape (size, size) and labels 0..9; class c brightens rows near 2.5·c."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        row = int(c * (size - 3) / 9)
        images[i, row: row + 3, :] = 250
    return images, labels.astype(np.uint8)


def write_synthetic_mnist(folder: Path, *, splits=("train", "test"), n: int = 200, gz: bool = True, raw_layout: bool = False) -> Path:
    """Write MNIST-named IDX files for ``splits`` into ``folder`` (or ``folder/MNIST/raw``); return ``folder``."""
    target = folder / "MNIST" / "raw" if raw_layout else folder
    ext = ".gz" if gz else ""
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for k, split in enumerate(splits):
        images, labels = synthetic_images(n, seed=k)
        write_idx(target / (stems[split][0] + ext), images)
        write_idx(target / (stems[split][1] + ext), labels)
    return folder
