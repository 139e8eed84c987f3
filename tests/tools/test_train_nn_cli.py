"""`supsup train --scenario NN` and `--transfer` through CliRunner."""
import json

import pytest
import torch
from click.testing import CliRunner

from supsup_core.data.streams import StreamConfig
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig
from tools.cli import main

TRAIN = ["train", "--dataset", "permuted-mnist", "--num-tasks", "2", "--model", "lenet", "--width", "16",
         "--batch-size", "32", "--iterations", "8", "--lr", "1e-2", "--no-progress"]


def test_nn_reports_masks_allocated_against_true_tasks(tmp_path):
    out = tmp_path / "nn"
    result = CliRunner().invoke(main, [*TRAIN, "--scenario", "NN", "--check-every", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["scenario"] == "NN" and results["true_tasks"] == 2
    assert results["masks_allocated"] == sum(c["allocated"] for c in results["checks"]) >= 1
    assert len(results["per_task_accuracy"]) == 2 and 0 <= results["average_accuracy"] <= 1
    assert "masks allocated:" in result.output
    # the allocated masks are stored, and the run evaluates without task ids (but not in GG, nor resumed)
    gn = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GNs", "--no-progress"])
    assert gn.exit_code == 0, gn.output
    gg = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GG"])
    assert gg.exit_code == 2 and "NN run" in gg.output
    again = CliRunner().invoke(main, [*TRAIN, "--scenario", "NN", "--check-every", "4", "--out", str(out)])
    assert again.exit_code == 1 and "not resumable" in again.output and "Try" not in again.output  # the folder's state


def test_transfer_needs_task_boundaries():
    result = CliRunner().invoke(main, [*TRAIN, "--scenario", "NN", "--transfer", "--out", "unused"])
    assert result.exit_code == 2 and "--transfer" in result.output


def _mean_of_earlier_scores(run: RunDirectory, task_id: int) -> dict[str, torch.Tensor]:
    """The naive reference for transfer: the mean of the saved scores of tasks 0..task_id-1, summed in order."""
    saved = [run.read_scores(t) for t in range(task_id)]
    return {name: sum(s[name] for s in saved) / task_id for name in saved[0]}


def _config(transfer: bool, lr: float = 1e-12) -> RunConfig:
    return RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), output_size=10, num_tasks=0, width=16),
                     stream=StreamConfig(dataset="permuted-mnist", num_tasks=3), train=TrainConfig(iterations=2, lr=lr),
                     save_scores=True, transfer=transfer)


def test_transfer_starts_each_task_at_the_mean_of_earlier_scores(tmp_path):
    # with a vanishing learning rate the saved scores are the initial ones
    run = RunDirectory.create(tmp_path / "t", _config(transfer=True))
    train_run(run)
    first, second, third = (run.read_scores(t) for t in range(3))
    for name in first:
        assert torch.allclose(second[name], first[name], atol=1e-8)
        assert torch.allclose(third[name], (first[name] + second[name]) / 2, atol=1e-8)
    assert all(torch.allclose(v, third[k], atol=1e-8) for k, v in _mean_of_earlier_scores(run, 2).items())


def test_transfer_reads_each_earlier_scores_file_once_even_across_a_resume(tmp_path, monkeypatch):
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), output_size=10, num_tasks=0, width=16),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=5), train=TrainConfig(iterations=2, lr=1e-12),
                       save_scores=True, transfer=True)
    run = RunDirectory.create(tmp_path / "r", config)

    def crash_after_task_1(task_id, row):
        if task_id == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(run, on_task_end=crash_after_task_1)
    reads = []
    real_read = RunDirectory.read_scores
    monkeypatch.setattr(RunDirectory, "read_scores", lambda self, t: reads.append(t) or real_read(self, t))
    train_run(RunDirectory.open(tmp_path / "r"))
    assert reads == [0, 1]  # the tasks finished before the resume; tasks 2 and 3 were summed from memory
    monkeypatch.setattr(RunDirectory, "read_scores", real_read)
    saved = [run.read_scores(t) for t in range(5)]
    for t in range(1, 5):  # with a vanishing learning rate each task's saved scores are its initial ones
        for name, value in _mean_of_earlier_scores(run, t).items():
            assert torch.allclose(saved[t][name], value, atol=1e-8)


def test_without_transfer_tasks_start_apart(tmp_path):
    run = RunDirectory.create(tmp_path / "n", _config(transfer=False))
    train_run(run)
    assert not torch.allclose(run.read_scores(1)["layers.0"], run.read_scores(0)["layers.0"])


def test_transfer_implies_saving_scores_in_the_library_as_in_the_cli(tmp_path):
    config = RunConfig(model=ModelConfig(name="lenet", num_tasks=0), stream=StreamConfig(dataset="permuted-mnist", num_tasks=2),
                       train=TrainConfig(iterations=1), transfer=True)
    assert config.save_scores is True  # transfer reads the earlier tasks' scores back from their files
    result = CliRunner().invoke(main, [*TRAIN, "--transfer", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t" / "config.json").read_text())["save_scores"] is True


def test_an_nn_run_that_crashed_before_its_results_is_never_resumed_as_gg(tmp_path, monkeypatch):
    import supsup_core.infer.nn_training as nn_training

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash during the evaluation after the masks were written")

    monkeypatch.setattr(nn_training, "evaluate_gn", crash)
    out = tmp_path / "nn"
    result = CliRunner().invoke(main, [*TRAIN, "--scenario", "NN", "--check-every", "4", "--out", str(out)])
    assert result.exit_code != 0 and list((out / "masks").glob("*.safetensors"))
    monkeypatch.undo()
    resumed = CliRunner().invoke(main, [*TRAIN, "--out", str(out)])
    assert resumed.exit_code != 0 and "NN run" in resumed.output
    gg = CliRunner().invoke(main, ["evaluate", str(out), "--scenario", "GG"])
    assert gg.exit_code != 0 and "NN run" in gg.output
