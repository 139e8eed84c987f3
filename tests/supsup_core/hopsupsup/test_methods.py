"""The recovery-method registry: each entry's config type, and recovery_config's checks."""
import dataclasses

import pytest

from hopfield_masks.recovery import RecoveryConfig, SteerConfig
from supsup_core.hopsupsup.methods import RECOVERY_METHODS, recovery_config


def test_each_method_names_its_config_type_and_the_default_is_the_steered_one():
    assert list(RECOVERY_METHODS) == ["steered", "reference"]  # the first is the default of recover_task and the CLI
    assert RECOVERY_METHODS["steered"].config_type is SteerConfig
    assert RECOVERY_METHODS["reference"].config_type is RecoveryConfig
    for entry in RECOVERY_METHODS.values():
        assert entry.options == tuple(f.name for f in dataclasses.fields(entry.config_type))
        assert entry.summary and callable(entry.descend)


def test_recovery_config_sets_the_given_knobs_and_defaults_the_rest():
    assert recovery_config("steered") == SteerConfig()
    assert recovery_config("steered", steps=7, patience=None) == SteerConfig(steps=7, patience=None)
    assert recovery_config("reference", gamma=0.01, schedule="cosine") == RecoveryConfig(gamma=0.01, schedule="cosine")


@pytest.mark.parametrize("method, option, owner", [("steered", "gamma", "reference"), ("steered", "lr", "reference"),
                                                   ("reference", "step_size", "steered"), ("reference", "retries", "steered")])
def test_recovery_config_refuses_the_other_methods_knobs_rather_than_ignore_them(method, option, owner):
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ValueError, match=f"{option} \\({flag}\\) applies to method '{owner}' only, so method '{method}' "
                                         f"would ignore it; drop it or choose method '{owner}'"):
        recovery_config(method, **{option: 1})


def test_recovery_config_refuses_unknown_methods_knobs_and_values():
    with pytest.raises(ValueError, match="method must be one of \\['steered', 'reference'\\]; got 'annealed'"):
        recovery_config("annealed")
    with pytest.raises(ValueError, match="temperature \\(--temperature\\) is not an option of any recovery method"):
        recovery_config("steered", temperature=1.0)
    with pytest.raises(ValueError, match="step_size must be a number in \\(0, inf\\)"):
        recovery_config("steered", step_size=0.0)
