"""Run directories under faults and bad input: the lock, checksums, stale temp files, lost rows, deleted masks."""
import dataclasses
import fcntl
import json
import os
import signal

import pytest
import torch

from hopfield_masks.files import tensor_checksum
from hopfield_masks.io import load_tensors, save_tensors
from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.infer import nn_training
from supsup_core.infer.gn_evaluation import GNConfig
from supsup_core.infer.nn_training import NNConfig, train_nn, train_nn_run
from supsup_core.nn.models import ModelConfig
from supsup_core.train import continual
from supsup_core.train.continual import train_run
from supsup_core.train.results import RunResults
from supsup_core.train.run_lock import RunBusyError
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig
from tests.supsup_core.lock_holder import hold_lock


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _config(num_tasks=3, seed=1, **kw) -> RunConfig:
    return RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=16),
                     stream=StreamConfig(dataset="permuted-mnist", num_tasks=num_tasks, seed=1),
                     train=TrainConfig(iterations=15, batch_size=64, lr=1e-2), seed=seed, **kw)


def _train(path, digits, config=None, **kw):
    config = config or _config()
    with RunDirectory.create(path, config) as run:
        return run, train_run(run, stream=build_stream(config.stream, data=digits), **kw)


def _flip_data_bit(path, at=0):
    """Flip the lowest bit of byte ``at`` of the data section (after the safetensors header)."""
    raw = bytearray(path.read_bytes())
    raw[8 + int.from_bytes(raw[:8], "little") + at] ^= 1
    path.write_bytes(bytes(raw))


def _trained(monkeypatch):
    """Record the task ids train_task is called with."""
    calls, real = [], continual.train_task
    monkeypatch.setattr(continual, "train_task", lambda m, t, *a, **k: calls.append(t) or real(m, t, *a, **k))
    return calls


# ------------------------------------------------------------------------------------------------- lock
def test_a_second_process_is_refused_while_the_first_holds_the_run(tmp_path, digits):
    path = tmp_path / "run"
    holder = hold_lock(path, _config())
    try:
        for config in (_config(), _config(seed=2)):  # the same config, and one that would be "a different config"
            with pytest.raises(RunBusyError, match=f"held by pid {holder.pid} .*Wait until that command ends"):
                RunDirectory.create(path, config)
        with pytest.raises(RunBusyError, match=f"held by pid {holder.pid}"):
            train_run(RunDirectory.open(path), stream=build_stream(_config().stream, data=digits))
        assert not (path / "masks").exists() and not (path / "results.json").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the kernel drops a dead process's lock
        holder.wait()
    run, result = _train(path, digits)
    assert len(result.accuracy_matrix) == 3


def _locked_elsewhere(path) -> bool:
    """Whether an flock on ``path/.lock`` through a new open file (as another process would) is refused."""
    fd = os.open(path / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops an flock this call took


def test_the_lock_is_reentrant_in_one_process_and_released_on_close(tmp_path):
    with RunDirectory.create(tmp_path / "run", _config()) as run:
        again = RunDirectory.create(tmp_path / "run", _config())  # the same process: allowed
        again.close()
        assert _locked_elsewhere(run.path)  # the outer holder still holds it
        with run.locked():
            run.write_results(RunResults())
        assert _locked_elsewhere(run.path)
    assert not _locked_elsewhere(run.path)
    run.write_results(RunResults())  # a write takes it for its duration
    assert not _locked_elsewhere(run.path)


# -------------------------------------------------------------------------------------------- checksums
@pytest.mark.parametrize("kind", ["weights", "mask", "scores"])
def test_one_flipped_bit_in_any_tensor_file_is_refused(tmp_path, digits, kind):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=1, save_scores=True))
    path = {"weights": run.weights_path, "mask": run.mask_path(0), "scores": run.scores_path(0)}[kind]
    _flip_data_bit(path, at=5)
    read = {"weights": run.load_model, "mask": lambda: run.read_task(0), "scores": lambda: run.read_scores(0)}[kind]
    with pytest.raises(ValueError, match=f"{path.name} is corrupted: .* checksum\\. .*[Dd]elete {path}"):
        read()


def test_weights_of_another_dtype_or_seed_are_refused(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=1))
    tensors, meta = load_tensors(run.weights_path)
    meta = {k: v for k, v in meta.items() if k != "checksum"}

    def write(new):  # a well-formed file with a valid checksum
        save_tensors(run.weights_path, new, {**meta, "checksum": tensor_checksum(new, meta)})

    write({k: torch.zeros_like(v, dtype=torch.float64) for k, v in tensors.items()})
    with pytest.raises(ValueError, match="should be torch.float32 .* got torch.float64"):
        run.load_model()
    other = RunDirectory(tmp_path / "other", _config(num_tasks=1, seed=2))
    write(other.fixed_model().state_dict())
    with pytest.raises(ValueError, match="differs from the weights seed 1 draws.*do not replace it"):
        run.load_model()
    save_tensors(run.weights_path, tensors, meta)  # the right tensors, no checksum
    with pytest.raises(ValueError, match="corrupted"):
        run.load_model()


def test_a_run_of_the_format_without_checksums_is_refused_with_the_reason(tmp_path):
    run = RunDirectory.create(tmp_path / "run", _config())
    run.close()
    config = json.loads((run.path / "config.json").read_text())
    (run.path / "config.json").write_text(json.dumps({**config, "format_version": 1}))
    with pytest.raises(ValueError, match="format_version 1; this code reads 2 and 3. .*before its files carried checksums"):
        RunDirectory.open(run.path)


# ------------------------------------------------------------------------------------------ bad input
def test_malformed_run_files_are_value_errors(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=2))
    (run.path / "results.json").write_text("[]")
    with pytest.raises(ValueError, match="holds list, not the run's results object. Delete it and rerun"):
        run.read_results()
    tensors, meta = load_tensors(run.mask_path(0))
    meta = {**{k: v for k, v in meta.items() if k != "checksum"}, "bits": "[1, 2]"}
    save_tensors(run.mask_path(0), tensors, {**meta, "checksum": tensor_checksum(tensors, meta)})
    with pytest.raises(ValueError, match="'bits' metadata must map each packed tensor"):
        run.read_task(0)
    run.mask_path(1).unlink()
    run.mask_path(1).mkdir()
    with pytest.raises(ValueError, match="task_001.safetensors is not a file"):
        run.saved_tasks()
    (run.path / "config.json").write_text("[]")
    with pytest.raises(ValueError, match="config.json: a run config must be a JSON object; got list"):
        RunDirectory.open(run.path)


def test_a_stream_that_is_not_the_runs_is_refused_before_anything_is_written(tmp_path, digits):
    config = _config()
    others = [dataclasses.replace(config.stream, dataset="rotated-mnist"), dataclasses.replace(config.stream, num_tasks=2),
              dataclasses.replace(config.stream, seed=7)]
    with RunDirectory.create(tmp_path / "run", config) as run:
        for other, match in zip(others, ["3 task.* of permuted-mnist but the stream gives 3 of rotated-mnist",
                                         "gives 2 of permuted-mnist", "permutations are not the ones of the run's stream seed 1"]):
            with pytest.raises(ValueError, match=match):
                train_run(run, stream=build_stream(other, data=digits))
    assert not (run.path / "masks").exists() and not run.results_path.exists()


# ----------------------------------------------------------------------------------- stale temp files
def test_a_folder_holding_only_temp_files_counts_as_empty_and_they_are_removed(tmp_path, digits):
    path = tmp_path / "run"
    path.mkdir()
    (path / ".config.json.k2j4h1ab.tmp").write_text('{"partial')  # a kill during the config.json write
    run = RunDirectory.create(path, _config())
    run.close()
    assert not (path / ".config.json.k2j4h1ab.tmp").exists()
    stale = [path / ".weights.safetensors.ab12cd34.tmp", path / "masks" / ".task_000.safetensors.x9_y8z7w.tmp"]
    (path / "masks").mkdir()
    for p in stale:
        p.write_bytes(bytes(1000))
    (path / ".notes.txt.tmp").write_text("not ours")  # only this project's temp file names are removed
    _train(path, digits)
    assert not any(p.exists() for p in stale) and (path / ".notes.txt.tmp").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / ".notes.txt.tmp").write_text("x")
    with pytest.raises(ValueError, match="is not empty and holds no run"):
        RunDirectory.create(foreign, _config())
    assert sorted(p.name for p in foreign.iterdir()) == [".notes.txt.tmp"]  # refused before anything is written


# ------------------------------------------------------------------------- lost rows, deleted masks
@pytest.mark.parametrize("lose", ["rows", "file"])
def test_lost_results_rows_are_rebuilt_from_the_mask_files_without_retraining(tmp_path, digits, monkeypatch, lose):
    run, first = _train(tmp_path / "run", digits)
    masks = {t: run.mask_path(t).read_bytes() for t in range(3)}
    results = run.read_results()
    if lose == "rows":
        del results.accuracy_matrix[1:], results.mask_bytes_per_task[1:], results.tasks[1:]
        results.finished_tasks = {0}
        run.write_results(results)
    else:
        run.results_path.unlink()
    calls = _trained(monkeypatch)
    _, again = _train(run.path, digits)
    assert calls == [] and {t: run.mask_path(t).read_bytes() for t in range(3)} == masks
    assert again.accuracy_matrix == first.accuracy_matrix and again.resumed_from == (1 if lose == "rows" else 0)
    assert run.read_results().finished is True and run.finished_tasks() == {0, 1, 2}


def test_a_deleted_mask_file_is_retrained_alone_and_the_rows_end_consistent(tmp_path, digits, monkeypatch):
    run, first = _train(tmp_path / "run", digits)
    before = {t: run.mask_path(t).read_bytes() for t in range(3)}
    old_mask = run.read_task(1).masks
    run.delete_task_masks(1)
    calls = _trained(monkeypatch)
    _, again = _train(run.path, digits)
    assert calls == [1]
    assert run.mask_path(0).read_bytes() == before[0] and run.mask_path(2).read_bytes() == before[2]
    new_mask = run.read_task(1).masks  # the same per-task seed: the same mask, up to float rounding
    agree = sum(int((new_mask[k] == old_mask[k]).sum()) for k in old_mask) / sum(m.numel() for m in old_mask.values())
    assert agree > 0.99
    matrix = again.accuracy_matrix
    assert again.resumed_from == 1 and matrix[0] == first.accuracy_matrix[0]
    assert [len(row) for row in matrix] == [1, 2, 3] and all(matrix[i][j] == matrix[j][j] for i in range(3) for j in range(i + 1))
    tasks = run.read_results_data()["tasks"]
    assert [t["trained"] for t in tasks] == [True, True, True]  # task 2 was not retrained, and keeps its record
    assert "optimizer" in tasks[2] and tasks[2]["iterations"] == 15


def test_a_stores_temp_file_inside_the_run_is_not_taken_for_the_runs_own(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=1))
    ours, foreign = run.path / ".results.json.abcd_123.tmp", run.path / ".results.json.store.k2j4h3g1.tmp"
    ours.write_bytes(b"partial"), foreign.write_bytes(b"a store being written")
    _train(run.path, digits, _config(num_tasks=1))
    assert not ours.exists() and foreign.exists()


def test_each_trained_task_records_which_optimizer_implementation_ran(tmp_path, digits, monkeypatch):
    results, real = [], continual.train_task
    monkeypatch.setattr(continual, "train_task", lambda *a, **k: results.append(real(*a, **k)) or results[-1])
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=2))
    assert [t.optimizer for t in run.read_results().tasks] == [r.optimizer for r in results]


# ----------------------------------------------------------------------------------------------- NN
def _nn_config(train):
    return NNConfig(train=train, check_every=4)


def test_nn_training_must_use_the_runs_train_config(tmp_path, digits):
    config = _config(num_tasks=2)
    with RunDirectory.create(tmp_path / "run", config) as run:
        other = dataclasses.replace(config.train, lr=0.5)
        with pytest.raises(ValueError, match=r"config.train differs from the run's train config \(lr: 0.01 -> 0.5\)"):
            train_nn_run(run, _nn_config(other), evaluation=GNConfig(scenario="GNs", real_outputs=10),
                         stream=build_stream(config.stream, data=digits))
    assert not run.results_path.exists()


def test_nn_training_clears_the_fused_masked_weights_even_when_it_fails(tmp_path, digits, monkeypatch):
    config = _config(num_tasks=2)
    stream = build_stream(config.stream, data=digits)
    real_batches = stream.train_batches

    def failing(task_id, **kw):
        yield from real_batches(task_id, **kw) if task_id == 0 else ()
        raise RuntimeError("data source failed")

    monkeypatch.setattr(stream, "train_batches", failing)
    cleared = []
    monkeypatch.setattr(nn_training, "clear_fresh_masked_weights", cleared.append)
    model = RunDirectory(tmp_path, config).fixed_model()
    with pytest.raises(RuntimeError, match="data source failed"):
        train_nn(model, stream, _nn_config(config.train))
    assert cleared == [model]
