"""recover_task: the steered method's retries out of spurious states (and find_stored, the test they rest
on), its checks, and recovery_batches."""
import pytest
import torch

from hopfield_masks import make_memory
from hopfield_masks.recovery import (
    RecoveryConfig,
    RecoveryResult,
    RecoveryTrace,
    SteerConfig,
)
from supsup_core.hopsupsup import methods
from supsup_core.hopsupsup.encode import mask_layout
from supsup_core.hopsupsup.recover import recover_task, recovery_batches
from supsup_core.nn.models import ModelConfig, build_model


@pytest.fixture
def model():
    return build_model(ModelConfig(name="bnnet", input_shape=(64,), width=16, num_tasks=0), torch.Generator().manual_seed(0))


def _memory(model, backend, count=3):
    layout = mask_layout(model)
    patterns = torch.randint(0, 2, (count, layout.dim), generator=torch.Generator().manual_seed(1)).float() * 2 - 1
    return make_memory("pseudoinverse", layout.dim, backend, layout=layout).store(patterns), patterns


def test_find_stored_names_the_pattern_a_state_equals(model):
    memory, patterns = _memory(model, "implicit")
    other = patterns[0].clone()
    other[0] *= -1  # one bit off: no stored pattern
    assert memory.find_stored(torch.stack([patterns[2], other, patterns[0]])).tolist() == [2, -1, 0]
    assert memory.find_stored(patterns[1]).tolist() == [1]


def _scripted_steer(monkeypatch, states):
    """Replace steer() by one that returns ``states`` in turn and records each call's config and batch size."""
    calls = []

    def steer(*, batches, config, init, **_):
        calls.append((config, len(next(batches))))
        state = states[len(calls) - 1]
        return RecoveryResult(state, state.clone(), config.steps, RecoveryTrace(entropy=[], energy=[], flips=[], states=[]))

    monkeypatch.setattr(methods, "steer", steer)
    return calls


def _batches():
    while True:
        yield torch.randn(8, 64)


def test_a_spurious_end_is_retried_with_more_data_per_step_until_a_stored_pattern(model, monkeypatch):
    memory, patterns = _memory(model, "implicit")
    spurious = torch.sign(patterns.sum(0) + 0.5)  # a mixture of the three: none of them
    calls = _scripted_steer(monkeypatch, [spurious, spurious, patterns[1]])
    found = recover_task(model, memory, _batches(), real_outputs=10, method="steered", config=SteerConfig(steps=10))
    assert torch.equal(found.state, patterns[1]) and found.attempts == 3
    assert [(c.steps, round(c.step_size, 4), size) for c, size in calls] == [(10, 0.25, 8), (20, 0.1, 32), (30, 0.05, 64)]
    assert found.steps == 60


def test_retries_stop_at_the_limit_and_never_run_for_a_stored_end(model, monkeypatch):
    memory, patterns = _memory(model, "implicit")
    spurious = torch.sign(patterns.sum(0) + 0.5)
    calls = _scripted_steer(monkeypatch, [spurious] * 5)
    found = recover_task(model, memory, _batches(), real_outputs=10, method="steered", config=SteerConfig(retries=1))
    assert found.attempts == 2 and len(calls) == 2 and torch.equal(found.state, spurious)
    calls = _scripted_steer(monkeypatch, [patterns[0]])
    assert recover_task(model, memory, _batches(), real_outputs=10, method="steered").attempts == 1


def test_a_dense_memory_cannot_tell_a_spurious_end_so_it_never_retries(model, monkeypatch):
    memory, patterns = _memory(model, "dense")
    calls = _scripted_steer(monkeypatch, [torch.sign(patterns.sum(0) + 0.5)] * 3)
    assert recover_task(model, memory, _batches(), real_outputs=10, method="steered").attempts == 1
    assert len(calls) == 1


def test_retry_configs_and_bad_retry_counts():
    assert SteerConfig().retry(1) == (SteerConfig(steps=60, step_size=0.1), 4)
    config, merge = SteerConfig().retry(2)
    assert (config.steps, merge) == (90, 8) and config.step_size == pytest.approx(0.05)
    with pytest.raises(ValueError, match="retries must be an integer >= 0"):
        SteerConfig(retries=-1)
    with pytest.raises(ValueError, match="attempt counts retries from 1"):
        SteerConfig().retry(0)


def test_a_finite_batch_iterator_that_runs_out_ends_the_retries_cleanly(model, monkeypatch):
    memory, patterns = _memory(model, "implicit")
    spurious = torch.sign(patterns.sum(0) + 0.5)
    calls = _scripted_steer(monkeypatch, [spurious, spurious, spurious])
    batches = [torch.randn(8, 64) for _ in range(5)]  # the first descent takes one, the first retry the other 4
    found = recover_task(model, memory, batches, real_outputs=10, method="steered")
    assert found.attempts == 2 and [size for _, size in calls] == [8, 32]  # the second retry found no batches


def _digits(n):
    from supsup_core.data.streams import TaskData

    return TaskData(torch.randn(n, 64), torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("batch_size", [-5, 0, 2.5])
def test_recovery_batches_refuse_a_batch_size_below_one(batch_size):
    # -5 looped forever, 0 failed inside range()
    with pytest.raises(ValueError, match="batch_size must be"):
        next(recovery_batches(_digits(10), batch_size=batch_size, generator=torch.Generator()))


def test_recovery_batches_refuse_empty_data():
    with pytest.raises(ValueError, match="data holds no images"):
        next(recovery_batches(_digits(0), batch_size=4, generator=torch.Generator()))


@pytest.mark.parametrize("real_outputs, message", [(0, "real_outputs must be >= 1"), (11, "the model has 10 outputs, fewer than the 11")])
def test_recover_task_checks_real_outputs_against_the_model(model, real_outputs, message):
    memory, _ = _memory(model, "implicit")
    with pytest.raises(ValueError, match=message):
        recover_task(model, memory, _batches(), real_outputs=real_outputs, config=SteerConfig(steps=2))


def test_the_default_method_is_the_steered_one(model, monkeypatch):
    memory, patterns = _memory(model, "implicit")
    calls = _scripted_steer(monkeypatch, [patterns[0]])
    recover_task(model, memory, _batches(), real_outputs=10)
    assert len(calls) == 1 and isinstance(calls[0][0], SteerConfig)


def test_a_config_of_the_other_method_is_refused(model):
    memory, _ = _memory(model, "implicit")
    with pytest.raises(TypeError, match="method 'steered' takes a SteerConfig; got RecoveryConfig"):
        recover_task(model, memory, _batches(), real_outputs=10, method="steered", config=RecoveryConfig())
    with pytest.raises(TypeError, match="method 'reference' takes a RecoveryConfig; got SteerConfig"):
        recover_task(model, memory, _batches(), real_outputs=10, method="reference", config=SteerConfig())
    with pytest.raises(ValueError, match="method must be one of \\['steered', 'reference'\\]"):
        recover_task(model, memory, _batches(), real_outputs=10, method="annealed")


def test_the_reference_method_runs_the_annealed_descent_from_the_mean_pattern(model, monkeypatch):
    memory, patterns = _memory(model, "implicit")
    seen = []

    def anneal(*, init, config, **_):
        seen.append((init.clone(), config))
        return RecoveryResult(patterns[2], init.clone(), 4, RecoveryTrace(entropy=[], energy=[], flips=[], states=[]))

    monkeypatch.setattr(methods, "anneal", anneal)
    found = recover_task(model, memory, _batches(), real_outputs=10, method="reference")
    assert torch.equal(found.state, patterns[2]) and (found.steps, found.attempts) == (4, 1)
    assert torch.equal(seen[0][0], memory.mean_pattern.float()) and seen[0][1] == RecoveryConfig()
    assert set(found.masks) == set(mask_layout(model).names)
