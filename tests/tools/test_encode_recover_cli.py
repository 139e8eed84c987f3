"""`supsup encode` / `supsup recover` end to end on a tiny BNNet run over the built-in digits."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tools.cli import main

TRAIN = ["train", "--dataset", "split-mnist", "--model", "bnnet", "--num-tasks", "3", "--iterations", "15",
         "--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--weight-decay", "1e-4", "--no-progress"]


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    # the reference width (2048): the reference recovery's lr and γ were tuned for it
    for width in (2048, 32):
        result = _invoke(*TRAIN, "--width", width, "--out", root / f"w{width}")
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def run(trained, tmp_path):
    return Path(shutil.copytree(trained / "w2048", tmp_path / "run"))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("rule,backend,method", [("storkey_reference", "dense", "reference"), ("pseudoinverse", "implicit", "steered")])
def test_encode_then_recover_every_task_exactly(run, tmp_path, rule, backend, method):
    store = tmp_path / "store.safetensors"
    result = _invoke("encode", run, "--rule", rule, "--backend", backend, "--out", store)
    assert result.exit_code == 0, result.output
    assert "stored 3 task(s) of d = 4096" in result.output
    out = tmp_path / "recovery.json"
    result = _invoke("recover", run, "--store", store, "--method", method, "--no-progress", "--json", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["exact_recoveries"] == 3, result.output
    assert [t["bit_errors"] for t in report["tasks"]] == [0, 0, 0]
    for task in report["tasks"]:
        assert task["bits"] == 4096
        # steered stops once sign(z) has held still for --patience (5) steps; it settles within a few
        assert task["steps"] == 30 if method == "reference" else 5 <= task["steps"] < 30
        assert task["accuracy"] == pytest.approx(task["gg_accuracy"])
    assert report["mean_accuracy"] == pytest.approx(report["mean_gg_accuracy"])


def test_recovery_needs_only_the_fixed_weights_and_the_store(run, tmp_path):
    store = tmp_path / "store.safetensors"
    assert _invoke("encode", run, "--rule", "pseudoinverse", "--out", store).exit_code == 0
    key = tmp_path / "answer_key.json"
    assert _invoke("recover", run, "--store", store, "--method", "steered", "--no-progress", "--json", key).exit_code == 0
    shutil.rmtree(run / "masks")
    shutil.rmtree(run / "scores", ignore_errors=True)
    out = tmp_path / "blind.json"
    result = _invoke("recover", run, "--store", store, "--method", "steered", "--no-progress", "--json", out)
    assert result.exit_code == 0, result.output
    blind, scored = json.loads(out.read_text()), json.loads(key.read_text())
    assert blind["exact_recoveries"] is None and all(t["bit_errors"] is None for t in blind["tasks"])
    # the same masks come back without the mask files: same accuracy on every task
    assert [t["accuracy"] for t in blind["tasks"]] == [t["accuracy"] for t in scored["tasks"]]
    assert "n/a" in result.output


def test_store_of_another_run_is_refused_and_nothing_changes(run, trained, tmp_path):
    other = tmp_path / "other.safetensors"
    assert _invoke("encode", trained / "w32", "--rule", "hebbian", "--out", other).exit_code == 0
    before = _digest(run)
    result = _invoke("recover", run, "--store", other, "--no-progress", "--json", tmp_path / "r.json")
    assert result.exit_code != 0
    assert "encoded for masked layers" in result.output and "supsup encode" in result.output
    assert _digest(run) == before and not (tmp_path / "r.json").exists()


def test_corrupted_store_is_refused(run, tmp_path):
    store = tmp_path / "store.safetensors"
    assert _invoke("encode", run, "--rule", "hebbian", "--out", store).exit_code == 0
    data = bytearray(store.read_bytes())
    data[-20:] = b"\x00" * 20
    store.write_bytes(bytes(data))
    before = _digest(run)
    result = _invoke("recover", run, "--store", store, "--no-progress")
    assert result.exit_code != 0 and "store" in result.output.lower()
    assert _digest(run) == before


def test_encoding_a_run_without_masks_says_so_and_writes_nothing(run, tmp_path):
    shutil.rmtree(run / "masks")
    store = tmp_path / "store.safetensors"
    result = _invoke("encode", run, "--rule", "hebbian", "--out", store)
    assert result.exit_code != 0 and "no task masks to encode" in result.output
    assert not store.exists()


def test_encode_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = _invoke("encode", tmp_path, "--rule", "hebbian", "--out", tmp_path / "s.safetensors")
    assert result.exit_code != 0 and "not a run directory" in result.output
