"""`supsup evaluate RUN --scenario GG` through CliRunner, and its errors (GNs/GNu: test_evaluate_gn_cli.py)."""
import json
import shutil

import pytest
from click.testing import CliRunner

from tools.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    result = CliRunner().invoke(main, ["train", "--dataset", "split-mnist", "--num-tasks", "2", "--model", "lenet", "--width", "16",
                                       "--iterations", "10", "--lr", "1e-2", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_gg_matches_the_training_results_and_writes_json(run_dir, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GG", "--json", str(tmp_path / "e.json")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "e.json").read_text())
    final_row = json.loads((run_dir / "results.json").read_text())["accuracy_matrix"][-1]
    assert written["per_task_accuracy"] == final_row
    assert written["average_accuracy"] == pytest.approx(sum(final_row) / 2)
    assert "average accuracy (GG)" in result.output


def test_evaluate_errors(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])  # a folder, but no run: not an option's misuse
    assert result.exit_code == 1 and "not a run directory" in result.output and "Try" not in result.output
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.parametrize("option", [["--inference", "binary"], ["--objective", "superfluous"], ["--images-per-inference", "4"],
                                    ["--max-images-per-task", "3"], ["--real-outputs", "10"],
                                    ["--inference", "oneshot"]])  # even the default value, when given
def test_gg_refuses_the_options_of_task_inference(run_dir, option):
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GG", *option])
    assert result.exit_code == 2
    assert f"{option[0]} applies to --scenario GNs or GNu only" in result.output


@pytest.mark.parametrize("damage", ["mask", "results", "config"])
def test_a_damaged_run_exits_1_without_usage_help(run_dir, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    target = {"mask": run / "masks" / "task_1.safetensors", "results": run / "results.json", "config": run / "config.json"}[damage]
    target.write_bytes(b"\x00garbage")
    for scenario in ("GG", "GNs"):
        result = CliRunner().invoke(main, ["evaluate", str(run), "--scenario", scenario, "--no-progress"])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # a message, not a traceback
        assert "Try" not in result.output and "Error:" in result.output


def test_gg_csv_has_a_line_per_task_and_the_average(run_dir, tmp_path):
    import csv

    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GG", "--no-progress",
                                       "--json", str(tmp_path / "e.json"), "--csv", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "e.json").read_text())
    rows = list(csv.DictReader((tmp_path / "e.csv").open()))
    assert [r["task"] for r in rows] == ["0", "1", "average"]
    assert [float(r["accuracy"]) for r in rows] == [*written["per_task_accuracy"], written["average_accuracy"]]
    missing = CliRunner().invoke(main, ["evaluate", str(run_dir), "--csv", str(tmp_path / "nowhere" / "e.csv")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
