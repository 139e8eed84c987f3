"""Loading MNIST IDX directories (flat, MNIST/raw, one split) and the built-in digits."""
import numpy as np
import pytest

from supsup_core.data.datasets import (
    find_mnist_files,
    load_data,
    load_mnist,
    split_train_test,
)
from supsup_core.data.idx import write_idx
from tests.supsup_core.synthetic import synthetic_images, write_synthetic_mnist


def test_both_splits_flat_gzip(tmp_path):
    data = load_mnist(write_synthetic_mnist(tmp_path, n=50))
    assert data.train_x.shape == (50, 1, 28, 28) and data.test_x.shape == (50, 1, 28, 28)
    assert data.num_classes == 10 and "train and test" in data.note
    assert abs(float(data.train_x.mean())) < 1e-4  # standardised with the training statistics


def test_torchvision_raw_layout_uncompressed(tmp_path):
    write_synthetic_mnist(tmp_path, n=30, gz=False, raw_layout=True)
    assert set(find_mnist_files(tmp_path)) == {"train", "test"}
    assert len(load_mnist(tmp_path).train_y) == 30


def test_one_split_is_divided_deterministically_and_says_so(tmp_path):
    write_synthetic_mnist(tmp_path, splits=("test",), n=100)
    a, b = load_mnist(tmp_path), load_mnist(tmp_path)
    assert len(a.train_y) == 80 and len(a.test_y) == 20 and "only the test split" in a.note
    np.testing.assert_array_equal(a.test_y, b.test_y)
    np.testing.assert_array_equal(a.test_x, b.test_x)


def test_split_is_a_partition():
    x = np.arange(50)[:, None]
    tx, ty, vx, vy = split_train_test(x, np.arange(50), 0.2)
    assert sorted(np.concatenate([ty, vy]).tolist()) == list(range(50)) and len(vy) == 10
    with pytest.raises(ValueError, match="test_fraction"):
        split_train_test(x, np.arange(50), 1.0)


def test_directory_without_idx_files(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="no MNIST IDX files found"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_mnist(tmp_path / "missing")


def test_image_label_count_mismatch(tmp_path):
    images, labels = synthetic_images(20)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:15])
    with pytest.raises(ValueError, match="20 images but .* 15 labels"):
        load_mnist(tmp_path)


def test_swapped_files(tmp_path):
    images, labels = synthetic_images(20)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", labels)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", images)
    with pytest.raises(ValueError, match="swapped"):
        load_mnist(tmp_path)


def test_digits_are_the_default():
    data = load_data(None)
    assert data.train_x.shape[1:] == (1, 8, 8) and len(data.train_y) + len(data.test_y) == 1797
    assert "digits" in data.note


def test_real_mnist_test_split(mnist_dir):
    data = load_mnist(mnist_dir)
    assert len(data.train_y) == 8000 and len(data.test_y) == 2000 and data.train_x.shape[1:] == (1, 28, 28)


def test_a_folder_with_only_label_files_names_the_missing_images(tmp_path):
    _, labels = synthetic_images(20)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=r"no complete pair.*t10k-labels-idx1-ubyte.gz without t10k-images-idx3-ubyte\[.gz\]") as err:
        load_mnist(tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value) and "no MNIST IDX files found" not in str(err.value)


def test_a_complete_split_beside_a_half_one_is_used_and_the_half_one_reported(tmp_path, caplog):
    write_synthetic_mnist(tmp_path, splits=("test",), n=50)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", synthetic_images(20)[1])
    with caplog.at_level("WARNING", logger="supsup_core.data.datasets"):
        data = load_mnist(tmp_path)
    assert len(data.train_y) + len(data.test_y) == 50
    assert "train-labels-idx1-ubyte.gz without train-images-idx3-ubyte" in caplog.text


def test_idx_files_with_zero_images_are_refused_by_name(tmp_path):
    images, labels = synthetic_images(20)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:0])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:0])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz holds no images"):
        load_mnist(tmp_path)


def test_a_lone_split_too_small_to_divide_is_refused(tmp_path):
    images, labels = synthetic_images(1)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=r"holds 1 image\(s\), too few to divide"):
        load_mnist(tmp_path)
