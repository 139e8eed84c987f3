"""`supsup train --method` with the baselines through CliRunner: the method's defaults, every option that means
nothing for it refused before anything is written, and the commands that need supermasks refusing its runs."""
import json

import pytest
from click.testing import CliRunner

from tools.cli import main

TINY = ["--width", "16", "--iterations", "8", "--batch-size", "32", "--no-progress"]


def _train(out, method, *args, model="lenet", num_tasks=2):
    return CliRunner().invoke(main, ["train", "--dataset", "permuted-mnist", "--num-tasks", str(num_tasks), "--model", model,
                                     "--method", method, *TINY, *args, "--out", str(out)])


def _train_config(out) -> dict:
    config = json.loads((out / "config.json").read_text())
    return {key: config["train"][key] for key in ("optimizer", "lr", "shared_lr")}


@pytest.fixture(scope="module")
def psp_run(tmp_path_factory):
    """A 2-task psp-binary run trained by `supsup train`, and the command's result."""
    out = tmp_path_factory.mktemp("psp") / "run"
    return out, _train(out, "psp-binary")


def test_train_records_the_method_and_reports_bytes_per_task(psp_run):
    out, result = psp_run
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "psp-binary" and config["context_powers"] is False
    assert "bytes per task: " in result.output and "in memory" in result.output and "d/8" not in result.output
    assert "fwt=" in result.output and "after task   1:" in result.output
    assert _train_config(out) == {"optimizer": "rmsprop", "lr": 1e-4, "shared_lr": None}  # PSP's reference settings


def test_batchensemble_takes_its_reference_settings_where_none_are_given(tmp_path):
    assert _train(tmp_path / "default", "batchensemble", num_tasks=1).exit_code == 0
    assert _train_config(tmp_path / "default") == {"optimizer": "adam", "lr": 0.01, "shared_lr": 0.0001}
    assert _train(tmp_path / "given", "batchensemble", "--lr", "0.05", num_tasks=1).exit_code == 0
    assert _train_config(tmp_path / "given") == {"optimizer": "adam", "lr": 0.05, "shared_lr": 0.0001}
    result = _train(tmp_path / "sgd", "batchensemble", "--optimizer", "sgd", "--shared-lr", "0.002", num_tasks=1)
    assert result.exit_code == 0, result.output
    assert _train_config(tmp_path / "sgd") == {"optimizer": "sgd", "lr": 0.01, "shared_lr": 0.002}


def test_context_powers_are_recorded_and_leave_nothing_per_task(tmp_path):
    result = _train(tmp_path / "run", "psp-rotation", "--context-powers", num_tasks=1)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["context_powers"] is True
    assert json.loads((tmp_path / "run" / "results.json").read_text())["memory_bytes_per_task"] == 0


@pytest.mark.parametrize("method, args, message", [
    ("psp-binary", ["--density", "0.3"],
     "--density configures supermasks, but --method psp-binary trains none; drop it, or use --method supsup"),
    ("batchensemble", ["--mask", "topk"], "--mask configures supermasks, but --method batchensemble trains none"),
    ("finetune", ["--score-init", "zeros"], "--score-init configures supermasks, but --method finetune trains none"),
    ("separate", ["--save-scores"], "--save-scores configures supermasks, but --method separate trains none"),
    ("psp-rotation", ["--transfer"], "--transfer configures supermasks, but --method psp-rotation trains none"),
    ("finetune-multihead", ["--scenario", "NN"],
     "--method finetune-multihead trains task by task only. Drop --scenario NN, or use --method supsup"),
    ("supsup", ["--shared-lr", "1e-3"],
     "--shared-lr sets the learning rate of weights shared between tasks, but --method supsup trains none; drop it"),
    ("separate", ["--shared-lr", "1e-3"], "but --method separate trains none; drop it"),
    ("psp-rotation", ["--lr", "1e-3", "--shared-lr", "1e-3"],
     "--method psp-rotation trains only weights shared between tasks, at --shared-lr (or --lr when --shared-lr is not "
     "given); give one of the two"),
    ("psp-binary", ["--context-powers"],
     "powers of a binary context repeat every second task (C² = I); use --context-powers with rotation or complex contexts"),
    ("supsup", ["--context-powers"], "--context-powers applies to psp-rotation and psp-complex only, not to supsup; drop it"),
    ("psp-complex", ["--model", "bnnet"],
     "method 'psp-complex' is built for the models lenet, fc1024; got 'bnnet'. Use --model lenet, or --method supsup for bnnet"),
    ("separate", ["--model", "resnet18"], "Use --model lenet, or --method supsup for resnet18"),
])
def test_options_that_mean_nothing_for_the_method_are_refused_before_anything_is_written(tmp_path, method, args, message):
    result = _train(tmp_path / "run", method, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_gn_evaluation_of_a_psp_run_is_refused_naming_gg(psp_run, tmp_path):
    out, _ = psp_run
    result = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GNu", "--no-progress"])
    assert result.exit_code != 0
    assert "trained with --method psp-binary, which has no way to find a task without its id; evaluate it with --scenario GG" \
        in result.output


def test_encoding_a_psp_run_is_refused_naming_supsup(psp_run, tmp_path):
    out, _ = psp_run
    store = tmp_path / "psp.store"
    result = CliRunner().invoke(main, ["encode", str(out), "--out", str(store)])
    assert result.exit_code != 0 and not store.exists()
    assert "trained with --method psp-binary, which keeps no supermasks; a Hopfield memory of masks (HopSupSup) needs a run " \
           "trained with --method supsup" in result.output


def test_gg_evaluation_of_a_psp_run_gives_the_last_row_of_its_results(psp_run, tmp_path):
    out, _ = psp_run
    result = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GG", "--no-progress", "--json", str(tmp_path / "gg.json")])
    assert result.exit_code == 0, result.output
    last = json.loads((out / "results.json").read_text())["accuracy_matrix"][-1]
    assert json.loads((tmp_path / "gg.json").read_text())["per_task_accuracy"] == last
    assert [f"task {t}: {a:.4f}" for t, a in enumerate(last)] == result.output.splitlines()[:2]


def test_a_store_is_never_written_over_the_path_of_the_runs_shared_state(tmp_path):
    out = tmp_path / "run"
    assert _train(out, "supsup", num_tasks=1).exit_code == 0
    result = CliRunner().invoke(main, ["encode", str(out), "--out", str(out / "shared.safetensors")])
    assert result.exit_code != 0 and "at a path the run uses" in result.output
    assert not (out / "shared.safetensors").exists()  # else every later load of the run fails on it
