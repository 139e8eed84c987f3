"""`supsup train` under bad input and faults: every option checked before the first write, ignored options
refused, damaged run files and a busy run as exit-1 errors (no traceback, no "Try --help")."""
import json
import os
import signal

import pytest
from click.testing import CliRunner

from supsup_core.train.runs import RunDirectory
from tests.supsup_core.lock_holder import hold_lock
from tools.cli import main

TINY = ["--dataset", "permuted-mnist", "--num-tasks", "2", "--model", "lenet", "--width", "16", "--iterations", "10",
        "--batch-size", "32", "--lr", "1e-2", "--no-progress"]


def _train(out, *args):
    return CliRunner().invoke(main, ["train", *TINY, *args, "--out", str(out)])


@pytest.mark.parametrize("option, value", [("--epochs", "inf"), ("--lr", "inf"), ("--lr", "nan"), ("--momentum", "nan"),
                                           ("--weight-decay", "inf"), ("--density", "nan")])
def test_non_finite_floats_are_refused_before_anything_is_written(tmp_path, option, value):
    args = [a for a in TINY if a not in ("--iterations", "10")] if option == "--epochs" else TINY
    result = CliRunner().invoke(main, ["train", *args, option, value, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not a finite number" in result.output and option in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_nn_epsilon_nan_is_refused(tmp_path):
    result = _train(tmp_path / "run", "--scenario", "NN", "--epsilon", "nan")
    assert result.exit_code == 2 and "not a finite number" in result.output and not (tmp_path / "run").exists()


def test_a_too_small_output_is_refused_before_anything_is_written_so_the_fix_runs(tmp_path):
    result = _train(tmp_path / "run", "--output-size", "5")
    assert result.exit_code == 2 and "output size 5 is smaller than the 10 classes" in result.output
    assert not (tmp_path / "run").exists()
    fixed = _train(tmp_path / "run", "--output-size", "10")
    assert fixed.exit_code == 0, fixed.output


@pytest.mark.parametrize("args, message", [
    (["--sparsity", "0.3"], "--density sets the fraction kept by top-k masks, but this run's masks are threshold masks"),
    (["--check-every", "5"], "--check-every applies to --scenario NN only"),
    (["--epsilon", "0.5"], "--epsilon applies to --scenario NN only"),
    (["--scenario", "NN", "--save-scores"], "an NN run stores only its masks"),
])
def test_options_that_would_be_ignored_are_refused_with_the_reason(tmp_path, args, message):
    result = _train(tmp_path / "run", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--density", "--sparsity"])  # --sparsity: the reference code's name
def test_density_with_topk_masks_is_used(tmp_path, option):
    result = _train(tmp_path / "run", "--mask", "topk", option, "0.3", "--num-tasks", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["density"] == 0.3


def test_damaged_run_files_are_exit_1_errors_naming_the_file(tmp_path):
    out = tmp_path / "run"
    assert _train(out).exit_code == 0
    results = (out / "results.json").read_text()
    for content, message in [("{not json", "is not valid JSON"), ("[]", "holds list, not the run's results object")]:
        (out / "results.json").write_text(content)
        result = _train(out)
        assert result.exit_code == 1 and message in result.output and "Try" not in result.output, result.output
        assert not isinstance(result.exception, (ValueError, AttributeError, TypeError))
    (out / "results.json").write_text(results)
    weights = out / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 1  # one flipped bit in the last weight
    weights.write_bytes(bytes(raw))
    result = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GG"])
    assert result.exit_code != 0 and "is corrupted" in result.output
    result = _train(out)
    assert result.exit_code == 1 and "is corrupted" in result.output and f"delete {weights}" in result.output
    weights.unlink()  # the advice works: the weights follow from the seed
    assert _train(out).exit_code == 0
    (out / "config.json").write_text("[]")
    result = _train(out)
    assert result.exit_code == 1 and "a run config must be a JSON object" in result.output


def test_a_deleted_mask_file_is_retrained_by_a_rerun(tmp_path):
    out = tmp_path / "run"
    assert _train(out).exit_code == 0
    old = {t: (out / "masks" / f"task_00{t}.safetensors").read_bytes() for t in (0, 1)}
    old_mask = RunDirectory.open(out).read_task(0).masks
    (out / "masks" / "task_000.safetensors").unlink()
    result = _train(out)
    assert result.exit_code == 0, result.output
    run = RunDirectory.open(out)
    assert run.saved_tasks() == [0, 1] and (out / "masks" / "task_001.safetensors").read_bytes() == old[1]
    new_mask = run.read_task(0).masks  # the same per-task seed: the same mask, up to float rounding
    agree = sum(int((new_mask[k] == old_mask[k]).sum()) for k in old_mask) / sum(m.numel() for m in old_mask.values())
    assert agree > 0.99


def test_a_run_another_process_writes_is_refused_with_the_holder(tmp_path):
    out, one = tmp_path / "run", ["--num-tasks", "1"]
    assert _train(out, *one).exit_code == 0
    holder = hold_lock(out, RunDirectory.open(out).config)
    try:
        for args in ([], ["--seed", "5"]):  # the same options, and options that would be "a different config"
            result = _train(out, *one, *args)
            assert result.exit_code == 1 and f"held by pid {holder.pid}" in result.output and "Try" not in result.output
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert _train(out, *one).exit_code == 0


def test_a_folder_left_by_a_kill_during_the_first_write_is_used(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".config.json.q8z1x0ab.tmp").write_text('{"format_')
    result = _train(out)
    assert result.exit_code == 0, result.output
    assert not (out / ".config.json.q8z1x0ab.tmp").exists()
