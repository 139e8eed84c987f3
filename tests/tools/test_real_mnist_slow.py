"""End to end on the real MNIST test set in ../shared/data/mnist (slow: run with ``-m slow``)."""
import json

import pytest
from click.testing import CliRunner

from tools.cli import main

pytestmark = pytest.mark.slow


def _ok(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_split_mnist_hopsupsup_both_methods_recover_all_five_tasks(mnist_dir, tmp_path):
    run = tmp_path / "split5"
    _ok("train", "--dataset", "split-mnist", "--data-dir", mnist_dir, "--model", "bnnet", "--num-tasks", 5,
        "--epochs", 1, "--optimizer", "sgd", "--lr", 0.1, "--momentum", 0.9, "--weight-decay", 1e-4,
        "--no-progress", "--out", run)
    assert json.loads((run / "results.json").read_text())["average_accuracy"] >= 0.97
    for rule, backend, method in [("storkey_reference", "dense", "reference"), ("pseudoinverse", "implicit", "steered")]:
        store, out = tmp_path / f"{rule}.safetensors", tmp_path / f"{method}.json"
        _ok("encode", run, "--rule", rule, "--backend", backend, "--out", store)
        _ok("recover", run, "--store", store, "--method", method, "--no-progress", "--json", out)
        report = json.loads(out.read_text())
        assert report["exact_recoveries"] == 5, (method, [t["bit_errors"] for t in report["tasks"]])
        assert report["mean_accuracy"] == pytest.approx(report["mean_gg_accuracy"])


def test_permuted_mnist_fc1024_learns_every_task_and_forgets_nothing(mnist_dir, tmp_path):
    run = tmp_path / "perm3"
    _ok("train", "--dataset", "permuted-mnist", "--data-dir", mnist_dir, "--model", "fc1024", "--num-tasks", 3,
        "--iterations", 300, "--seed", 0, "--no-progress", "--out", run)
    matrix = json.loads((run / "results.json").read_text())["accuracy_matrix"]
    diagonal = [matrix[i][i] for i in range(3)]
    assert min(diagonal) >= 0.90
    assert matrix[-1] == diagonal  # fixed weights: the final row equals the diagonal exactly
