"""`supsup evaluate RUN --scenario GNs/GNu` through CliRunner: JSON contract and bad inputs."""
import json
import shutil

import pytest
from click.testing import CliRunner

from supsup_core.data.streams import StreamConfig
from supsup_core.nn.models import ModelConfig
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig
from tools.cli import main

TRAIN = ["train", "--dataset", "permuted-mnist", "--num-tasks", "2", "--model", "lenet", "--width", "16",
         "--iterations", "10", "--lr", "1e-2", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("gn") / "run"
    result = CliRunner().invoke(main, [*TRAIN, "--output-size", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("scenario, inference, objective", [("GNu", "oneshot", "superfluous"), ("GNs", "binary", "entropy")])
def test_gn_writes_the_json_contract(run_dir, tmp_path, scenario, inference, objective):
    path = tmp_path / "gn.json"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", scenario, "--inference", inference,
                                       "--objective", objective, "--images-per-inference", "16", "--no-progress",
                                       "--json", str(path)])
    assert result.exit_code == 0, result.output
    written = json.loads(path.read_text())
    assert len(written["per_task_accuracy"]) == 2
    assert written["average_accuracy"] == pytest.approx(sum(written["per_task_accuracy"]) / 2)
    assert 0 <= written["task_inference_accuracy"] <= 1
    assert (written["scenario"], written["inference"], written["objective"], written["real_outputs"]) == (scenario, inference, objective, 10)
    assert "task-inference accuracy" in result.output


def test_single_image_inference_with_a_cap(run_dir, tmp_path):
    path = tmp_path / "one.json"
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GNu", "--images-per-inference", "1",
                                       "--max-images-per-task", "3", "--no-progress", "--json", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text())["inferences"] == 6


def test_run_with_no_tasks_is_an_error(tmp_path):
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), output_size=20, num_tasks=0, width=16),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=2), train=TrainConfig(iterations=1))
    RunDirectory.create(tmp_path / "empty", config)
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "empty"), "--scenario", "GNu", "--no-progress"])
    # the run's state, not the options, is at fault: exit 1 and no "Try --help"
    assert result.exit_code == 1 and "holds no trained task" in result.output and "Try" not in result.output


def _crashed_nn_run(run_dir, tmp_path):
    """A copy of the GG run relabelled as an NN run that crashed after its masks, before its results."""
    run = tmp_path / "nn"
    shutil.copytree(run_dir, run)
    (run / "results.json").write_text(json.dumps({"scenario": "NN", "finished": False, "accuracy_matrix": [],
                                                  "mask_bytes_per_task": [], "tasks": []}))
    return run


def test_an_unfinished_nn_run_exits_1_saying_what_is_missing(run_dir, tmp_path):
    run = _crashed_nn_run(run_dir, tmp_path)
    result = CliRunner().invoke(main, ["evaluate", str(run), "--scenario", "GNs", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no KeyError traceback
    assert "no mask_of_task" in result.output and "supsup train --scenario NN" in result.output


def test_gg_on_an_nn_run_is_a_misuse_of_scenario(run_dir, tmp_path):
    result = CliRunner().invoke(main, ["evaluate", str(_crashed_nn_run(run_dir, tmp_path)), "--scenario", "GG"])
    assert result.exit_code == 2 and "is an NN run" in result.output and "--scenario" in result.output


def test_unknown_objective_is_an_error(run_dir):
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GNu", "--objective", "kl"])
    assert result.exit_code == 2 and "Invalid value for '--objective'" in result.output


def test_output_size_smaller_than_the_classes_is_an_error(run_dir):
    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GNu", "--real-outputs", "30", "--no-progress"])
    assert result.exit_code == 2 and "fewer than the 30 classes" in result.output


def test_superfluous_needs_extra_outputs(tmp_path):
    out = tmp_path / "plain"
    assert CliRunner().invoke(main, [*TRAIN, "--num-tasks", "1", "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GNu", "--objective", "superfluous", "--no-progress"])
    assert result.exit_code == 2 and "needs extra outputs" in result.output


def test_gn_csv_adds_the_inference_and_own_mask_columns(run_dir, tmp_path):
    import csv

    result = CliRunner().invoke(main, ["evaluate", str(run_dir), "--scenario", "GNu", "--no-progress",
                                       "--json", str(tmp_path / "gn.json"), "--csv", str(tmp_path / "gn.csv")])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "gn.json").read_text())
    rows = list(csv.DictReader((tmp_path / "gn.csv").open()))
    assert list(rows[0]) == ["task", "accuracy", "inference_accuracy", "own_mask_accuracy"]
    assert [float(r["inference_accuracy"]) for r in rows] == [*written["per_task_inference_accuracy"],
                                                              written["task_inference_accuracy"]]
