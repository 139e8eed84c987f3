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
    # the same architecture as w32 with other random weights: its masks do not fit w32's weights
    result = _invoke(*TRAIN, "--width", 32, "--seed", 1, "--out", root / "w32_seed1")
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
    result = _invoke("recover", run, "--store", store, "--method", method, "--no-progress", "--json", out,
                     "--csv", tmp_path / "recovery.csv")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    lines = (tmp_path / "recovery.csv").read_text().splitlines()  # a line per task, the JSON's numbers without traces
    assert lines[0] == "task_id,bit_errors,bits,accuracy,gg_accuracy,steps,attempts,seconds" and len(lines) == 4
    assert [line.split(",")[1] for line in lines[1:]] == [str(t["bit_errors"]) for t in report["tasks"]]
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
    assert result.exit_code == 1 and "store" in result.output.lower()
    assert "Try" not in result.output  # a damaged file is not a misuse of the options
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


@pytest.fixture
def small(trained, tmp_path):
    return Path(shutil.copytree(trained / "w32", tmp_path / "small"))


@pytest.mark.parametrize("inside", ["config.json", "weights.safetensors", "results.json", "masks/new.safetensors",
                                    "masks/task_000.safetensors", "scores/x.store", ".lock"])
def test_encode_never_writes_over_the_run(small, inside):
    # `--out R/config.json` used to replace the run's config with a store: the run was lost
    (small / "scores").mkdir(exist_ok=True)  # a run trained with --save-scores has it
    before = _digest(small)
    result = _invoke("encode", small, "--out", small / inside)
    assert result.exit_code == 1, result.output
    assert "inside the run" in result.output and "overwrite the run" in result.output
    assert _digest(small) == before


def test_encode_may_write_a_new_name_inside_the_run_and_replaces_only_stores(small, tmp_path):
    result = _invoke("encode", small, "--out", small / "hopfield.store")
    assert result.exit_code == 0, result.output
    assert _invoke("encode", small, "--rule", "hebbian", "--out", small / "hopfield.store").exit_code == 0  # a store: replaced
    (tmp_path / "notes.txt").write_text("mine")
    result = _invoke("encode", small, "--out", tmp_path / "notes.txt")
    assert result.exit_code == 1 and "not a Hopfield store" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"
    result = _invoke("encode", small, "--out", tmp_path / "missing" / "s.store")
    assert result.exit_code == 2 and not (tmp_path / "missing").exists()


@pytest.mark.parametrize("deleted", [1, 2])
def test_encode_refuses_a_run_with_a_missing_task_file(small, tmp_path, deleted):
    # it stored tasks 0, 2 as 0, 1 (or dropped the last task) and recovery scored the wrong tasks
    (small / "masks" / f"task_{deleted:03d}.safetensors").unlink()
    result = _invoke("encode", small, "--out", tmp_path / "s.store")
    assert result.exit_code == 1, result.output
    assert f"task(s) [{deleted}]" in result.output and "Delete nothing; rerun `supsup train`" in result.output
    assert not (tmp_path / "s.store").exists()


def test_auto_builds_an_implicit_store_where_dense_is_over_max_memory_and_dense_is_refused(run, tmp_path):
    result = _invoke("encode", run, "--max-memory", "100M", "--out", tmp_path / "s.store")
    assert result.exit_code == 0, result.output
    assert "implicit backend" in result.output
    result = _invoke("encode", run, "--backend", "dense", "--max-memory", "100M", "--out", tmp_path / "d.store")
    assert result.exit_code == 1 and not (tmp_path / "d.store").exists()
    need = 4096 * 4096 * (4 + 16) + 4096 * 8  # Ψ and the pseudo-inverse's two float64 work matrices
    assert f"needs {need:,} bytes" in result.output and "over the limit of 104,857,600 bytes" in result.output
    assert "--backend implicit" in result.output


def test_a_store_of_another_run_with_the_same_layers_is_refused_unless_forced(small, trained, tmp_path):
    store = tmp_path / "s.store"
    assert _invoke("encode", trained / "w32_seed1", "--out", store).exit_code == 0
    result = _invoke("recover", small, "--store", store, "--no-progress", "--json", tmp_path / "r.json")
    assert result.exit_code == 1 and "another run" in result.output and "--force" in result.output
    assert not (tmp_path / "r.json").exists()
    result = _invoke("recover", small, "--store", store, "--no-progress", "--force", "--steps", "3")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "recovering anyway (forced)" in result.output


def test_a_store_with_no_recorded_run_is_accepted_with_a_warning(small, tmp_path):
    from hopfield_masks import load_memory, load_store, save_store

    store = tmp_path / "s.store"
    assert _invoke("encode", small, "--out", store).exit_code == 0
    assert load_memory(store).run_digest is not None
    tensors, header = load_store(store)
    older = {k: v for k, v in header.items() if k not in ("format", "format_version", "checksum", "run_weights_sha256")}
    save_store(tmp_path / "old.store", tensors, older)
    result = _invoke("recover", small, "--store", tmp_path / "old.store", "--no-progress", "--steps", "3")
    assert result.exit_code == 0, result.output
    assert "warning: the store records no run identity" in result.output


def test_recover_defaults_to_the_steered_method(small, tmp_path):
    store = tmp_path / "s.store"
    assert _invoke("encode", small, "--out", store).exit_code == 0
    result = _invoke("recover", small, "--store", store, "--no-progress", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text())["method"] == "steered"


@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "inf"), ("--gamma", "nan"), ("--momentum", "nan"),
                                           ("--weight-decay", "inf"), ("--step-size", "nan")])
def test_recover_refuses_nan_and_inf(small, tmp_path, option, value):
    # --lr nan gave 0/5 silently; --step-size nan ended in a traceback
    (tmp_path / "none.store").write_text("options are checked before any file is read")
    result = _invoke("recover", small, "--store", tmp_path / "none.store", option, value, "--no-progress")
    assert result.exit_code == 2 and "not a finite number" in result.output, result.output


@pytest.mark.parametrize("args, message", [
    (["--gamma", "0.01"], "gamma (--gamma) applies to method 'reference' only, so method 'steered' would ignore it"),
    (["--method", "steered", "--lr", "500"], "lr (--lr) applies to method 'reference' only"),
    (["--method", "reference", "--step-size", "0.1"], "step_size (--step-size) applies to method 'steered' only"),
    (["--method", "reference", "--patience", "0"], "patience (--patience) applies to method 'steered' only"),
])
def test_recover_refuses_the_other_methods_options_rather_than_ignore_them(small, tmp_path, args, message):
    (tmp_path / "none.store").write_text("options are checked before any file is read")
    result = _invoke("recover", small, "--store", tmp_path / "none.store", *args, "--no-progress")
    assert result.exit_code == 2 and message in result.output, result.output


def test_recover_patience_zero_runs_every_step(small, tmp_path):
    store = tmp_path / "s.store"
    assert _invoke("encode", small, "--out", store).exit_code == 0
    result = _invoke("recover", small, "--store", store, "--steps", "4", "--patience", "0", "--retries", "0",
                     "--no-progress", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert [t["steps"] for t in json.loads((tmp_path / "r.json").read_text())["tasks"]] == [4, 4, 4]


@pytest.mark.parametrize("store", ["fifo", "/dev/null"])
def test_recover_names_a_store_that_is_not_a_regular_file(small, tmp_path, store):
    import os

    if store == "fifo":
        store = tmp_path / "fifo"
        os.mkfifo(store)
    result = _invoke("recover", small, "--store", store, "--no-progress")
    assert result.exit_code == 1 and "not a regular file" in result.output and "not found" not in result.output


def test_recover_json_into_a_missing_folder_is_refused(small, tmp_path):
    store = tmp_path / "s.store"
    assert _invoke("encode", small, "--out", store).exit_code == 0
    result = _invoke("recover", small, "--store", store, "--no-progress", "--json", tmp_path / "no" / "r.json")
    assert result.exit_code == 2 and "--json" in result.output and "does not exist" in result.output
    assert not (tmp_path / "no").exists()


def test_encode_bounds_its_float_patterns_too(small, tmp_path):
    # the memory alone fits, but the (K, d) float32 patterns handed to store() do not
    from hopfield_masks import estimate_nbytes
    from supsup_core.hopsupsup.encode import mask_layout
    from supsup_core.train.runs import RunDirectory

    run = RunDirectory.open(small)
    count, dim = len(run.saved_tasks()), mask_layout(run.load_model(num_tasks=0)).dim
    limit = estimate_nbytes("pseudoinverse", dim, "implicit", count=count) + count * dim * 2
    result = _invoke("encode", small, "--out", tmp_path / "s.store", "--max-memory", limit)
    assert result.exit_code == 1 and "for the float patterns" in result.output and not (tmp_path / "s.store").exists()
