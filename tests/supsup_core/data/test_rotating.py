"""The continuously rotating stream: angle per step, seeded batches, rotation as RotatedMNIST does it."""
import numpy as np
import pytest
import torch

from supsup_core.data.datasets import ImageData, load_digits
from supsup_core.data.rotating import RotatingStream
from supsup_core.data.streams import RotatedStream, rotate_images


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits()


def test_the_angle_advances_every_step_and_a_turn_closes():
    stream = RotatingStream(load_digits(), steps_per_turn=1000)
    assert [stream.angle(t) for t in (0, 1, 250, 999, 1000, 1250)] == [0.0, 0.36, 90.0, 359.64, 0.0, 90.0]


def test_batches_are_seeded_and_rotated_by_the_steps_angle(digits):
    stream = RotatingStream(digits, steps_per_turn=4)
    a = stream.train_batch(1, batch_size=16, generator=torch.Generator().manual_seed(3))
    b = stream.train_batch(1, batch_size=16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.x.shape == (16, 1, 8, 8)
    test = stream.test_batch(1, size=10)  # a quarter turn
    expected = rotate_images(torch.from_numpy(digits.test_x[:10]), 90.0)
    assert torch.equal(test.x, expected) and torch.equal(test.y, torch.from_numpy(digits.test_y[:10]))
    assert torch.equal(stream.test_batch(4, size=10).x, stream.test_batch(0, size=10).x)  # a full turn later


def test_rotate_images_is_what_rotated_mnist_does():
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[:, 0, 1, 2:6] = 1.0
    data = ImageData(x, np.array([0, 1]), x, np.array([0, 1]), 2, "toy", "")
    stream = RotatedStream(data=data, num_tasks=4, angle_step=30.0)
    assert torch.equal(stream.test_set(3).x, rotate_images(torch.from_numpy(x), 90.0))
    assert torch.equal(rotate_images(torch.from_numpy(x), 90.0) > 0.5, torch.rot90(torch.from_numpy(x), 1, dims=(2, 3)) > 0.5)


def test_bad_arguments_are_refused(digits):
    with pytest.raises(ValueError, match="steps_per_turn"):
        RotatingStream(digits, steps_per_turn=0)
    flat = ImageData(digits.train_x.reshape(len(digits.train_x), -1), digits.train_y, digits.test_x.reshape(len(digits.test_x), -1),
                     digits.test_y, 10, "flat", "")
    with pytest.raises(ValueError, match=r"images of shape \(N, C, H, W\)"):
        RotatingStream(flat)
