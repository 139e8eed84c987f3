"""Annealed (reference) and steered recovery on synthetic objectives whose minimum is a known pattern."""
import numpy as np
import pytest
import torch

from hopfield_masks import make_memory
from hopfield_masks.recovery import (
    SCHEDULES,
    RecoveryConfig,
    RecoveryTrace,
    SteerConfig,
    anneal,
    sign_ste,
    steer,
)


def _patterns(k, d, seed, density=0.5):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.where(rng.random((k, d)) < density, 1.0, -1.0)).float()


def _pull_towards(target):
    # a stand-in for the output entropy: lowest when the state equals ``target``
    def entropy(state, batch):
        return -(state * target).mean()

    return entropy


def _forever():
    while True:
        yield None


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_run_from_zero_to_at_most_one_and_never_decrease(name):
    weights = [SCHEDULES[name](t, 20) for t in range(21)]
    assert weights[0] == 0.0 and weights[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(weights, weights[1:]))


def test_sign_ste_maps_zero_to_plus_one_and_passes_gradients_straight_through():
    z = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    s = sign_ste(z)
    assert s.tolist() == [-1.0, 1.0, 1.0]
    (s * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert z.grad.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_descent_reaches_the_pattern_the_objective_points_to(seed):
    patterns = _patterns(6, 256, seed)
    memory = make_memory("storkey_reference", 256).store(patterns)
    target = patterns[seed % 6]
    result = anneal(entropy=_pull_towards(target), energy=memory.energy, init=memory.mean_pattern,
                    batches=_forever(), config=RecoveryConfig(steps=30, lr=50.0))
    assert torch.equal(result.state, target)
    assert result.steps == 30 and len(result.trace.states) == 30


def test_the_result_holds_z_whose_sign_is_the_state_and_a_trace_entry_per_step():
    patterns = _patterns(4, 128, 5)
    memory = make_memory("pseudoinverse", 128, "implicit").store(patterns)
    annealed = anneal(entropy=_pull_towards(patterns[1]), energy=memory.energy, init=memory.mean_pattern,
                      batches=[None] * 6, config=RecoveryConfig(steps=6, lr=50.0))
    assert torch.equal(torch.where(annealed.z >= 0, 1.0, -1.0), annealed.state)
    steered = steer(entropy=_pull_towards(patterns[1]), project=lambda g: memory.field(g) - memory.field(torch.zeros(128)),
                    recall=lambda s: memory.recall(s).states[0], energy=memory.energy, init=memory.mean_pattern,
                    batches=[None] * 6, config=SteerConfig(steps=6, patience=None))
    # the steered state is recalled from sign(z); the trace's last state is sign(z) itself
    assert torch.equal(steered.trace.states[-1].float(), torch.where(steered.z >= 0, 1.0, -1.0))
    assert RecoveryTrace._fields == ("entropy", "energy", "flips", "states")
    for result in (annealed, steered):
        assert result.steps == 6 and all(len(values) == 6 for values in result.trace)


def test_steered_descent_with_pseudoinverse_recovers_biased_correlated_masks_exactly():
    # biased patterns (P(+1) = 0.2) sharing a common core: the case where Hebbian/Storkey fail
    rng = np.random.default_rng(3)
    core = rng.random(512) < 0.15
    patterns = torch.from_numpy(np.where(core | (rng.random((20, 512)) < 0.08), 1.0, -1.0)).float()
    memory = make_memory("pseudoinverse", 512, "implicit").store(patterns)
    for task in (0, 7, 19):
        target = patterns[task]
        result = steer(entropy=_pull_towards(target), project=lambda g: memory.field(g) - memory.field(torch.zeros(512)),
                       recall=lambda s: memory.recall(s).states[0], energy=memory.energy,
                       init=memory.mean_pattern, batches=_forever(), config=SteerConfig(steps=20))
        assert torch.equal(result.state, target), f"task {task}"


def test_steered_descent_stops_once_the_sign_has_settled_for_patience_steps():
    patterns = _patterns(6, 256, 0)
    memory = make_memory("pseudoinverse", 256, "implicit").store(patterns)

    def run(patience):
        return steer(entropy=_pull_towards(patterns[2]), project=lambda g: memory.field(g) - memory.field(torch.zeros(256)),
                     recall=lambda s: memory.recall(s).states[0], energy=memory.energy, init=memory.mean_pattern,
                     batches=_forever(), config=SteerConfig(steps=20, patience=patience))

    full, early = run(None), run(3)
    assert full.steps == 20 and torch.equal(full.state, patterns[2])
    assert torch.equal(early.state, patterns[2])
    assert early.steps < 20 and early.trace.flips[-3:] == [0, 0, 0] and 0 not in early.trace.flips[-4:-3]
    assert torch.equal(early.trace.states[-1], full.trace.states[early.steps - 1])  # the same path, cut short


def test_descent_stops_when_batches_run_out_and_needs_at_least_one():
    memory = make_memory("hebbian", 32).store(_patterns(2, 32, 0))
    result = anneal(entropy=_pull_towards(torch.ones(32)), energy=memory.energy, init=memory.mean_pattern,
                    batches=[None] * 4, config=RecoveryConfig(steps=10))
    assert result.steps == 4 and len(result.trace.entropy) == 4
    with pytest.raises(ValueError, match="no batches"):
        anneal(entropy=_pull_towards(torch.ones(32)), energy=memory.energy, init=memory.mean_pattern, batches=[])


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="schedule must be one of"):
        RecoveryConfig(schedule="exponential")
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        RecoveryConfig(steps=0)
    with pytest.raises(ValueError, match="step_size must be a number in \\(0, inf\\)"):
        SteerConfig(step_size=0)
    with pytest.raises(ValueError, match="patience must be an integer >= 1 or None"):
        SteerConfig(patience=0)
    with pytest.raises(ValueError, match="init must be a 1-D vector of shape \\(d,\\)"):
        anneal(entropy=_pull_towards(torch.ones(4)), energy=lambda s: s.sum(), init=torch.zeros(2, 4), batches=[None])


NOT_FINITE = [float("nan"), float("inf"), float("-inf")]


@pytest.mark.parametrize("value", NOT_FINITE)
@pytest.mark.parametrize("field", ["lr", "momentum", "weight_decay", "gamma"])
def test_recovery_config_refuses_nan_and_inf_in_every_float(field, value):
    # NaN passed every `x < 0` check and recovery then ended on 0/5 exact with no error
    with pytest.raises(ValueError, match=f"{field} must be a number in .*got {value}"):
        RecoveryConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("momentum", -0.1), ("momentum", 1.5), ("weight_decay", -1e-4), ("lr", 0.0),
                                          ("gamma", -1.0), ("steps", 2.5), ("steps", True)])
def test_recovery_config_refuses_out_of_range_values(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        RecoveryConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("step_size", float("nan")), ("step_size", float("inf")), ("recall_steps", 0),
                                          ("retries", -1), ("retries", 1.0), ("patience", 2.0), ("steps", "30")])
def test_steer_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=f"{field} must be"):
        SteerConfig(**{field: value})
