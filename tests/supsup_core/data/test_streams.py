"""Task streams: permutations from RandomState(seed), rotations, class pairs, on-device batches."""
import numpy as np
import pytest
import torch

from supsup_core.data.datasets import ImageData, load_digits
from supsup_core.data.streams import (
    PermutedStream,
    RotatedStream,
    SplitStream,
    StreamConfig,
    build_stream,
)


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


@pytest.mark.parametrize("kwargs, match", [
    ({"num_tasks": 2.5}, "num_tasks must be an integer; got 2.5"),
    ({"num_tasks": True}, "num_tasks must be an integer"),
    ({"num_tasks": 2, "seed": 1.5}, "seed must be an integer"),
    ({"num_tasks": 2, "seed": -1}, "seed must be >= 0"),
    ({"num_tasks": 2, "seed": 2**32}, "seed must be < 2\\*\\*32"),
    ({"num_tasks": 2, "angle_step": float("nan")}, "angle_step must be a finite number"),
    ({"num_tasks": 2, "angle_step": float("inf")}, "angle_step must be a finite number"),
    ({"num_tasks": 2, "test_fraction": float("nan")}, "test_fraction must be a finite number"),
    ({"num_tasks": 2, "test_fraction": 1.0}, "test_fraction must lie strictly between 0 and 1"),
])
def test_stream_config_rejects_fractional_counts_and_non_finite_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StreamConfig(dataset="permuted-mnist", **kwargs)


def test_a_stream_needs_a_whole_number_of_tasks(digits):
    with pytest.raises(ValueError, match="num_tasks must be an integer; got 2.0"):
        RotatedStream(data=digits, num_tasks=2.0)


def test_a_path_data_dir_is_kept_as_a_string_so_the_config_stays_json(tmp_path):
    config = StreamConfig(dataset="permuted-mnist", num_tasks=2, data_dir=tmp_path)
    assert config.data_dir == str(tmp_path) and StreamConfig.from_dict(config.to_dict()) == config
    with pytest.raises(TypeError, match="data_dir must be a folder path"):
        StreamConfig(dataset="permuted-mnist", num_tasks=2, data_dir=3)


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


def _without_classes(data: ImageData, absent: set[int]) -> ImageData:
    keep_train, keep_test = ~np.isin(data.train_y, list(absent)), ~np.isin(data.test_y, list(absent))
    return data._replace(train_x=data.train_x[keep_train], train_y=data.train_y[keep_train],
                         test_x=data.test_x[keep_test], test_y=data.test_y[keep_test])


def test_a_split_task_whose_classes_are_absent_is_refused_up_front(digits):
    with pytest.raises(ValueError, match=r"task 3 \(classes 6 and 7\) has no train samples.*--num-tasks 3 or fewer"):
        SplitStream(data=_without_classes(digits, {6, 7}), num_tasks=5)
    assert SplitStream(data=_without_classes(digits, {6, 7}), num_tasks=3).num_train(2) > 0  # the tasks before it are fine
    assert SplitStream(data=_without_classes(digits, {7}), num_tasks=5).num_train(3) > 0  # one class of the pair is enough


def test_a_task_without_training_samples_yields_no_batches_but_an_error(digits):
    empty = digits._replace(train_x=digits.train_x[:0], train_y=digits.train_y[:0])
    stream = PermutedStream(data=empty, num_tasks=1, seed=0)
    with pytest.raises(ValueError, match="task 0 of permuted-mnist has no training samples"):
        next(stream.train_batches(0, batch_size=8, num_batches=2, generator=torch.Generator()))
