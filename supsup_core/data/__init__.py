"""Data: IDX files, datasets (MNIST family, built-in digits) and the task streams built from them."""

from supsup_core.data.datasets import (
    MNIST_FILES,
    ImageData,
    find_mnist_files,
    load_data,
    load_digits,
    load_mnist,
    split_train_test,
)
from supsup_core.data.idx import IDX_DTYPES, read_idx, write_idx
from supsup_core.data.streams import (
    STREAMS,
    PermutedStream,
    RotatedStream,
    SplitStream,
    StreamConfig,
    TaskData,
    TaskStream,
    build_stream,
)

__all__ = [
    "IDX_DTYPES",
    "ImageData",
    "MNIST_FILES",
    "PermutedStream",
    "RotatedStream",
    "STREAMS",
    "SplitStream",
    "StreamConfig",
    "TaskData",
    "TaskStream",
    "build_stream",
    "find_mnist_files",
    "load_data",
    "load_digits",
    "load_mnist",
    "read_idx",
    "split_train_test",
    "write_idx",
]
