"""`supsup capacity` through click's CliRunner: table, JSON, plot and option errors."""
import json

import pytest
from click.testing import CliRunner

from tools.cli import main


def run(*args):
    return CliRunner().invoke(main, ["capacity", *args])


def test_capacity_table_json_and_plot(tmp_path):
    result = run("--rule", "covariance", "--dim", "128", "--density", "0.1", "--loads", "0.05,0.1", "--noise", "0.05",
                 "--json", str(tmp_path / "c.json"), "--plot", str(tmp_path / "c.png"), "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "load patterns" in " ".join(result.output.split()) and "theory" in result.output
    data = json.loads((tmp_path / "c.json").read_text())
    assert (data["rule"], data["dim"], data["density"], data["kwta"]) == ("covariance", 128, 0.1, 13)
    assert [p["patterns"] for p in data["points"]] == [6, 13]
    assert set(data["points"][0]) >= {"load", "patterns", "fixed_point_fraction", "exact_recall_fraction", "mean_overlap"}
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_modern_rule_with_beta_and_kwta_off():
    result = run("--rule", "modern", "--dim", "64", "--loads", "0.5", "--beta", "0.5", "--kwta", "off")
    assert result.exit_code == 0, result.output
    assert "modern (implicit)" in result.output


@pytest.mark.parametrize("args, message", [
    (["--rule", "oja", "--dim", "64", "--loads", "0.1"], "Invalid value for '--rule'"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--density", "1.5"], "--density"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--density", "0"], "--density"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1,-1"], "loads must be positive finite numbers"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "a,b"], "not a comma-separated list of numbers"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--kwta", "zero"], "--kwta takes 'auto', 'off'"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--kwta", "65"], "k <= dim"),
    (["--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--beta", "2"], "--beta applies to --rule modern only"),
    (["--rule", "storkey", "--dim", "64", "--loads", "0.1", "--backend", "implicit"], "use backend='dense'"),
])
def test_bad_options(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_covariance_with_asynchronous_recall_runs_without_kwta(tmp_path):
    out = tmp_path / "c.json"
    result = CliRunner().invoke(main, ["capacity", "--rule", "covariance", "--dim", "64", "--density", "0.1",
                                       "--loads", "0.05", "--mode", "async", "--trials", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["points"][0]["patterns"] == 3


@pytest.mark.parametrize("option, value", [("--beta", "nan"), ("--beta", "inf"), ("--noise", "nan"),
                                           ("--density", "nan"), ("--correlation", "nan")])
def test_nan_and_inf_are_refused_as_usage_errors(option, value):
    # click's FloatRange lets NaN through (every comparison with NaN is false)
    result = run("--rule", "modern", "--dim", "64", "--loads", "0.1", option, value)
    assert result.exit_code == 2 and "not a finite number" in result.output, result.output


def test_infinite_loads_are_refused():
    result = run("--rule", "hebbian", "--dim", "64", "--loads", "0.1,inf")
    assert result.exit_code == 2 and "positive finite numbers" in result.output


def test_plot_into_a_missing_folder_is_refused_and_nothing_is_created(tmp_path):
    result = run("--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--plot", str(tmp_path / "new" / "c.png"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "new").exists()


def test_a_memory_over_max_memory_is_refused_with_status_1():
    result = run("--rule", "storkey", "--dim", "256", "--loads", "0.1", "--max-memory", "100K")
    assert result.exit_code == 1, result.output
    assert "over the limit of 102,400 bytes" in result.output and "Try --help" not in result.output
    result = run("--rule", "hebbian", "--dim", "256", "--loads", "0.1", "--max-memory", "100K")
    assert result.exit_code == 0 and "hebbian (implicit)" in result.output  # auto: implicit when dense is over the bound
    result = run("--rule", "hebbian", "--dim", "64", "--loads", "0.1", "--max-memory", "lots")
    assert result.exit_code == 2 and "--max-memory" in result.output
