"""Task streams: permutations from RandomState(seed), rotations, class pairs, on-device batches."""
import numpy as np
import pytest
import torch

from supsup_core.datasets import ImageData, load_digits
from supsup_core.streams import PermutedStream, RotatedStream, SplitStream, StreamConfig, build_stream


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return load_digits()


def test_permutation_t_comes_from_random_state_seed(digits):
    stream = PermutedStream(data=digits, num_tasks=3, seed=7)
    rs = np.random.RandomState(7)
    perms = [rs.permutation(64) for _ in range(3)]
    base = torch.from_numpy(digits.test_x).flatten(1)
    for t in range(3):
        np.testing.assert_array_equal(stream.test_set(t).x.flatten(1).numpy(), base[:, perms[t]].numpy())
    assert torch.equal(stream.test_set(1).y, torch.from_numpy(digits.test_y))


def test_rotation_zero_is_identity_and_quarter_turn_matches_rot90():
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[:, 0, 1, 2:6] = 1.0
    data = ImageData(x, np.array([0, 1]), x, np.array([0, 1]), 2, "toy", "")
    stream = RotatedStream(data=data, num_tasks=10, angle_step=10.0)
    torch.testing.assert_close(stream.test_set(0).x, torch.from_numpy(x), atol=1e-5, rtol=0)
    quarter = stream.test_set(9).x  # 90 degrees, counter-clockwise
    assert torch.equal(quarter > 0.5, torch.rot90(torch.from_numpy(x), 1, dims=(2, 3)) > 0.5)


def test_split_tasks_hold_class_pairs_with_original_labels(digits):
    stream = SplitStream(data=digits, num_tasks=5)
    for t in range(5):
        assert set(stream.test_set(t).y.tolist()) == {2 * t, 2 * t + 1}
    with pytest.raises(ValueError, match="at most 5 tasks"):
        SplitStream(data=digits, num_tasks=6)


def test_batches_are_seeded_and_cover_an_epoch(digits):
    stream = PermutedStream(data=digits, num_tasks=1, seed=0)
    n = stream.num_train(0)
    draw = lambda: [b.y for b in stream.train_batches(0, batch_size=100, num_batches=n // 100, generator=torch.Generator().manual_seed(1))]
    a, b = draw(), draw()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    seen = torch.cat([batch.x.flatten(1)[:, :1] for batch in stream.train_batches(
        0, batch_size=n, num_batches=1, generator=torch.Generator().manual_seed(1))])
    assert len(seen) == n
    big = list(stream.train_batches(0, batch_size=10 * n, num_batches=2, generator=torch.Generator()))
    assert all(len(batch.y) == n for batch in big)  # capped at the task's size


def test_stream_errors(digits):
    stream = build_stream(StreamConfig(dataset="rotated-mnist", num_tasks=2), data=digits)
    with pytest.raises(ValueError, match="out of range"):
        stream.test_set(2)
    with pytest.raises(ValueError, match="split"):
        stream.task_data(0, "valid")
    with pytest.raises(ValueError, match="dataset"):
        StreamConfig(dataset="cifar", num_tasks=2)
    with pytest.raises(ValueError, match="num_tasks"):
        StreamConfig(dataset="split-mnist", num_tasks=0)


def test_stream_config_round_trip():
    config = StreamConfig(dataset="permuted-mnist", num_tasks=4, data_dir="/x", seed=3)
    assert StreamConfig.from_dict(config.to_dict()) == config


def _count_builds(stream):
    built = []
    real = stream._make
    stream._make = lambda task_id, base: built.append(task_id) or real(task_id, base)
    return built


def test_task_sets_are_built_once_while_they_fit_the_cache(digits):
    stream = PermutedStream(data=digits, num_tasks=6, seed=0)
    built = _count_builds(stream)
    for last in range(6):  # what a run's evaluation does: every earlier task after each new one
        next(stream.train_batches(last, batch_size=8, num_batches=1, generator=torch.Generator()))
        for t in range(last + 1):
            assert torch.equal(stream.test_set(t).y, torch.from_numpy(digits.test_y))
    assert sorted(built) == [t for t in range(6) for _ in ("train", "test")]


def test_over_budget_the_least_recently_used_set_goes_first_but_two_always_stay(digits):
    stream = PermutedStream(data=digits, num_tasks=4, seed=0)
    stream.cache_bytes = 1  # nothing fits: only the last two asked are kept
    built = _count_builds(stream)
    first, second = stream.test_set(0), stream.test_set(1)
    assert stream.test_set(1) is second and stream.test_set(0) is first  # both kept, no rebuild
    stream.test_set(2)  # drops task 1's set, the one used least recently
    assert stream.test_set(0) is first
    assert built == [0, 1, 2]
    stream.test_set(1)
    assert built == [0, 1, 2, 1]
