"""Image classification data: MNIST from IDX files or scikit-learn's 8×8 digits, split into train and test."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from supsup_core.checks import check_fraction
from supsup_core.data.idx import read_idx

__all__ = ["ImageData", "MNIST_FILES", "find_mnist_files", "load_mnist", "load_digits", "load_data", "split_train_test"]

logger = logging.getLogger(__name__)

# split -> (images stem, labels stem); each may end in .gz or not.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLIT_SEED = 0  # fixed: the train/test split of a one-split source never depends on the run's seed


class ImageData(NamedTuple):
    """Train and test images, standardised, with integer labels.

    Attributes
    ----------
    train_x, test_x : ndarray of shape (N, C, H, W), float32
    train_y, test_y : ndarray of shape (N,), int64
    num_classes : int
    source : str
        Where the data came from (a directory or ``"sklearn digits"``).
    note : str
        How train and test were obtained (said to the user, e.g. that one split was divided).
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    source: str
    note: str


def split_train_test(x: np.ndarray, y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, ...]:
    """Divide one split into train and test by a fixed permutation (``RandomState(SPLIT_SEED)``).

    Returns ``(train_x, train_y, test_x, test_y)``; the last ``round(test_fraction · N)`` permuted
    samples are the test set.
    """
    check_fraction(test_fraction, "test_fraction")
    order = np.random.RandomState(SPLIT_SEED).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    train, test = order[: len(x) - n_test], order[len(x) - n_test:]
    return x[train], y[train], x[test], y[test]


def find_mnist_files(data_dir: str | os.PathLike) -> dict[str, tuple[Path, Path]]:
    """The MNIST IDX files under ``data_dir`` (flat, or torchvision's ``MNIST/raw/``), by split.

    Returns
    -------
    dict mapping ``"train"`` and/or ``"test"`` to ``(images_path, labels_path)``; a split whose two files
    are not both present is left out.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {data_dir} does not exist or is not a directory; pass the folder holding the MNIST IDX files.")
    found: dict[str, tuple[Path, Path]] = {}
    for folder in (data_dir, data_dir / "MNIST" / "raw", data_dir / "raw"):
        for split, stems in MNIST_FILES.items():
            if split in found:
                continue
            paths = [next((folder / (stem + ext) for ext in ("", ".gz") if (folder / (stem + ext)).is_file()), None) for stem in stems]
            if all(paths):
                found[split] = (paths[0], paths[1])
    return found


def _half_splits(data_dir: Path) -> list[str]:
    """``"<present file> without <missing stem>[.gz]"`` for each split of which only one of the two files is there."""
    halves = []
    for folder in (data_dir, data_dir / "MNIST" / "raw", data_dir / "raw"):
        for stems in MNIST_FILES.values():
            present = [next((folder / (stem + ext) for ext in ("", ".gz") if (folder / (stem + ext)).is_file()), None) for stem in stems]
            if sum(p is not None for p in present) == 1:
                have = next(p for p in present if p is not None)
                missing = next(stem for stem, p in zip(stems, present) if p is None)
                halves.append(f"{have} without {missing}[.gz]")
    return halves


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim >= 1 and len(images) == 0:
        raise ValueError(f"{images_path} holds no images (its header says 0); it is not a usable MNIST file. Download it again.")
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(
            f"expected images of shape (N, H, W) and labels of shape (N,); got {images.shape} in {images_path} "
            f"and {labels.shape} in {labels_path}. Check that the files are not swapped."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            "they must be the same split. Re-download the pair."
        )
    return images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)


def _standardise(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = float(train_x.mean()), float(train_x.std()) or 1.0
    return (train_x - mean) / std, (test_x - mean) / std


def load_mnist(data_dir: str | os.PathLike, *, test_fraction: float = 0.2) -> ImageData:
    """Load MNIST from IDX files; a directory with only one split is divided by :func:`split_train_test`.

    Parameters
    ----------
    data_dir : path-like
        Folder with ``train-*``/``t10k-*`` IDX files (``.gz`` or raw), flat or in ``MNIST/raw/``.
    test_fraction : float
        Share of a lone split used for testing.
    """
    found = find_mnist_files(data_dir)
    halves = _half_splits(Path(data_dir))
    if not found and halves:
        raise ValueError(
            f"no complete pair of MNIST IDX files in {data_dir}: found {'; '.join(halves)}. Each split needs its "
            "images and its labels; add the missing file(s) (or pass a folder that has both)."
        )
    if halves:
        logger.warning("ignoring an incomplete split in %s: %s", data_dir, "; ".join(halves))
    if not found:
        wanted = ", ".join(f"{s}[.gz]" for stems in MNIST_FILES.values() for s in stems)
        raise ValueError(
            f"no MNIST IDX files found in {data_dir} (nor in its MNIST/raw/); expected {wanted}. "
            "Pass --data-dir pointing at them, or leave it out to use the built-in digits."
        )
    if len(found) == 2:
        train_x, train_y = _read_split(*found["train"])
        test_x, test_y = _read_split(*found["test"])
        note = f"train and test splits read from {data_dir}"
    else:
        (split, paths), = found.items()
        x, y = _read_split(*paths)
        train_x, train_y, test_x, test_y = split_train_test(x, y, test_fraction)
        if not len(train_x) or not len(test_x):
            raise ValueError(
                f"{paths[0]} holds {len(x)} image(s), too few to divide into train and test with test_fraction="
                f"{test_fraction} ({len(train_x)} train / {len(test_x)} test). Add the other split's files or use more images."
            )
        note = (f"{data_dir} holds only the {split} split ({len(x)} images); divided deterministically into "
                f"{len(train_x)} train / {len(test_x)} test (fixed permutation RandomState({SPLIT_SEED}))")
    logger.info(note)
    train_x, test_x = _standardise(train_x, test_x)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return ImageData(train_x, train_y, test_x, test_y, num_classes, str(data_dir), note)


def load_digits(*, test_fraction: float = 0.2) -> ImageData:
    """scikit-learn's built-in 8×8 digits (1797 images, 10 classes), divided by :func:`split_train_test`."""
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    x = (bunch.images[:, None] / 16.0).astype(np.float32)
    train_x, train_y, test_x, test_y = split_train_test(x, bunch.target.astype(np.int64), test_fraction)
    note = (f"built-in sklearn digits ({len(x)} images of 8x8); divided deterministically into {len(train_x)} train / "
            f"{len(test_x)} test (fixed permutation RandomState({SPLIT_SEED}))")
    train_x, test_x = _standardise(train_x, test_x)
    return ImageData(train_x, train_y, test_x, test_y, 10, "sklearn digits", note)


def load_data(data_dir: str | os.PathLike | None = None, *, test_fraction: float = 0.2) -> ImageData:
    """MNIST from ``data_dir`` when given, else the built-in digits."""
    if data_dir is None:
        return load_digits(test_fraction=test_fraction)
    return load_mnist(data_dir, test_fraction=test_fraction)
