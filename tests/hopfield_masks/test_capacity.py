"""Capacity sweeps: pattern generators, the sweep's result structure, theory values and the plot."""
import json
import math

import pytest
import torch

from hopfield_masks import (
    CapacityConfig,
    CapacityResult,
    default_kwta,
    flip_bits,
    generate_patterns,
    mean_correlation,
    measure_capacity,
    plot_capacity,
    theory_loads,
)


def test_generate_patterns_density_seed_and_correlation():
    x = generate_patterns(50, 200, density=0.1, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, 200) and set(x.unique().tolist()) == {-1.0, 1.0}
    assert ((x > 0).sum(-1) == 20).all()
    again = generate_patterns(50, 200, density=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    assert abs(mean_correlation(x)) < 0.02
    correlated = generate_patterns(50, 400, correlation=0.4, generator=torch.Generator().manual_seed(1))
    assert ((correlated > 0).sum(-1) == 200).all()
    assert 0.3 < mean_correlation(correlated) < 0.5
    assert math.isnan(mean_correlation(x[:1]))


def test_flip_bits_flips_exactly():
    x = generate_patterns(5, 100, generator=torch.Generator().manual_seed(2))
    noisy = flip_bits(x, 0.13, torch.Generator().manual_seed(3))
    assert ((noisy != x).sum(-1) == 13).all()
    assert torch.equal(flip_bits(x, 0.0, torch.Generator()), x)


def test_theory_loads():
    loads = theory_loads(1024)
    assert list(loads.values()) == pytest.approx([0.138, 1 / (2 * math.log(1024)), 1 / math.sqrt(2 * math.log(1024))])
    assert default_kwta("covariance", 0.1, 256) == 26 and default_kwta("hebbian", 0.1, 256) is None


def test_sweep_structure_and_json(tmp_path):
    config = CapacityConfig("hebbian", 64, (0.2, 0.05), noise=0.1, trials=2)
    result = measure_capacity(config)
    assert isinstance(result, CapacityResult) and config.backend == "dense"
    assert [p.patterns for p in result.points] == [13, 3]
    assert result.points[0].load == 13 / 64
    data = json.loads(json.dumps(result.to_dict()))
    assert {"rule", "dim", "density", "points"} <= set(data)
    assert set(data["points"][0]) >= {"load", "patterns", "fixed_point_fraction", "exact_recall_fraction", "mean_overlap"}
    assert result.points[1].fixed_point_fraction == 1.0
    assert measure_capacity(config).points == result.points  # seeded
    path = plot_capacity([result, result], tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("rule", ["storkey_reference", "modern", "covariance"])
def test_sweep_runs_for_other_rules_and_async(rule):
    config = CapacityConfig(rule, 48, (0.1,), density=0.25, correlation=0.2, mode="async", trials=1)
    point = measure_capacity(config).points[0]
    assert 0.0 <= point.exact_recall_fraction <= 1.0 and -1.0 <= point.mean_overlap <= 1.0


@pytest.mark.parametrize("changes, message", [
    ({"rule": "oja"}, "rule must be one of"),
    ({"density": 1.0}, "density must be a number in \\(0, 1\\); got 1.0. It is P\\(\\+1\\)"),
    ({"density": 0.0}, "density must be a number in \\(0, 1\\)"),
    ({"correlation": 1.0}, "correlation must be a number in \\[0, 1\\)"),
    ({"loads": (0.1, -0.2)}, "loads must be positive finite numbers \\(patterns / dim\\); got -0.2"),
    ({"loads": (0.1, float("inf"))}, "loads must be positive finite numbers"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"loads": ()}, "loads must list at least one load"),
    ({"noise": 1.5}, "noise must be a number in \\[0, 1\\]"),
    ({"trials": 0}, "trials must be an integer >= 1"),
    ({"dim": 1}, "dim must be an integer >= 2"),
])
def test_config_errors(changes, message):
    arguments = {"rule": "hebbian", "dim": 32, "loads": (0.1,), **changes}
    with pytest.raises(ValueError, match=message):
        CapacityConfig(**arguments)


@pytest.mark.parametrize("kwta, mode", [(100, "sync"), (3, "async"), (0, "sync")])
def test_config_refuses_kwta_it_cannot_use(kwta, mode):
    with pytest.raises(ValueError, match="kwta"):
        CapacityConfig(rule="covariance", dim=32, loads=(0.1,), density=0.1, kwta=kwta, mode=mode)


def test_auto_kwta_is_resolved_by_the_config():
    assert CapacityConfig(rule="covariance", dim=256, loads=(0.1,), density=0.1, kwta="auto").kwta == 26
    assert CapacityConfig(rule="covariance", dim=256, loads=(0.1,), density=0.1, kwta="auto", mode="async").kwta is None
    assert CapacityConfig(rule="hebbian", dim=256, loads=(0.1,), kwta="auto").kwta is None
    assert CapacityConfig(rule="covariance", dim=256, loads=(0.1,), density=0.1).kwta is None  # the default stays off
    with pytest.raises(ValueError, match="kwta must satisfy k <= dim = 32; got k = 33"):
        CapacityConfig(rule="hebbian", dim=32, loads=(0.1,), kwta=33)
    with pytest.raises(ValueError, match="kwta works with mode='sync' only; got mode 'async'"):
        CapacityConfig(rule="hebbian", dim=32, loads=(0.1,), kwta=3, mode="async")


def test_trials_draw_from_the_seeding_helpers_streams(monkeypatch):
    from hopfield_masks import capacity
    from hopfield_masks.seeding import seeded_generator

    calls = []

    def recording(seed, *keys):
        calls.append((seed, *keys))
        return seeded_generator(seed, *keys)

    monkeypatch.setattr(capacity, "seeded_generator", recording)
    measure_capacity(CapacityConfig("hebbian", 32, (0.1,), seed=4, trials=3))
    assert calls == [(4, capacity.TRIAL_STREAM, trial) for trial in range(3)]  # one key count for every trial


def test_capacity_config_checks_the_rule_options_and_picks_auto_backends_like_make_memory():
    with pytest.raises(ValueError, match="beta must be a number in \\(0, inf\\); got nan"):
        CapacityConfig(rule="modern", dim=64, loads=(0.1,), rule_options={"beta": float("nan")})
    with pytest.raises(ValueError, match="takes no option 'beta'"):
        CapacityConfig(rule="hebbian", dim=64, loads=(0.1,), rule_options={"beta": 1.0})
    assert CapacityConfig(rule="modern", dim=64, loads=(0.1,)).backend == "implicit"
    assert CapacityConfig(rule="pseudoinverse", dim=256, loads=(0.1,)).backend == "dense"
    assert CapacityConfig(rule="pseudoinverse", dim=20_000, loads=(0.001,)).backend == "implicit"  # 8 GB dense
    assert CapacityConfig(rule="hebbian", dim=256, loads=(0.1,), max_bytes=100_000).backend == "implicit"


def test_a_sweep_over_the_memory_bound_is_refused():
    config = CapacityConfig(rule="storkey", dim=256, loads=(0.1,), max_bytes=100_000)
    with pytest.raises(ValueError, match="'storkey' has only a dense d×d form"):
        measure_capacity(config)
