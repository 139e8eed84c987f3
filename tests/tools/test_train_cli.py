"""`supsup train` through CliRunner: a tiny run, IDX data, resume after a crash, and every bad input."""
import json

import pytest
import torch
from click.testing import CliRunner

from supsup_core.data.idx import write_idx
from supsup_core.nn.fused import kernels_available
from supsup_core.train import continual
from tests.supsup_core.synthetic import synthetic_images, write_synthetic_mnist
from tools.cli import main

TINY = ["--model", "lenet", "--width", "16", "--iterations", "10", "--batch-size", "32", "--lr", "1e-2", "--no-progress"]


def _train(out, *args):
    return CliRunner().invoke(main, ["train", "--dataset", "permuted-mnist", "--num-tasks", "2", *TINY, *args, "--out", str(out)])


def test_train_on_builtin_digits(tmp_path):
    result = _train(tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "sklearn digits" in result.output and "after task   1:" in result.output and "d/8 =" in result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results) >= {"accuracy_matrix", "average_accuracy", "bwt", "forgetting_max", "forgetting_initial", "mask_bytes_per_task"}
    assert results["accuracy_matrix"][1][0] == results["accuracy_matrix"][0][0]
    assert ("fused CPU kernel" in result.output) == kernels_available()  # RMSprop is the default optimizer


def test_train_on_one_split_idx_directory(tmp_path):
    data = write_synthetic_mnist(tmp_path / "mnist", splits=("test",), n=200)
    result = CliRunner().invoke(main, ["train", "--dataset", "split-mnist", "--data-dir", str(data), "--model", "bnnet", "--width", "32",
                                       "--num-tasks", "2", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.1", "--no-progress",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "holds only the test split" in result.output and "divided deterministically" in result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["stream"]["data_dir"] == str(data.resolve()) and config["train"]["epochs"] == 2


def test_rerun_resumes_after_a_crash_and_keeps_written_files(tmp_path, monkeypatch):
    real = continual.train_task

    def crash(model, task_id, *args, **kwargs):
        if task_id == 1:
            raise RuntimeError("simulated crash")
        return real(model, task_id, *args, **kwargs)

    monkeypatch.setattr(continual, "train_task", crash)
    assert isinstance(_train(tmp_path / "run").exception, RuntimeError)
    written = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*.safetensors")}
    written[tmp_path / "run" / "config.json"] = (tmp_path / "run" / "config.json").read_bytes()
    monkeypatch.setattr(continual, "train_task", real)
    result = _train(tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "1 of 2 task(s) already finished" in result.output
    assert all(path.read_bytes() == data for path, data in written.items())
    assert len(json.loads((tmp_path / "run" / "results.json").read_text())["accuracy_matrix"]) == 2
    again = _train(tmp_path / "run")  # a finished run: nothing to do, nothing changes
    assert again.exit_code == 0 and "2 of 2 task(s) already finished" in again.output


def _bad_idx_dir(tmp_path, kind):
    folder = tmp_path / kind
    images, labels = synthetic_images(30)
    if kind == "magic":
        (folder).mkdir()
        (folder / "t10k-images-idx3-ubyte").write_bytes(b"\x89PNG" + bytes(50))
        write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    elif kind == "truncated":
        write_synthetic_mnist(folder, splits=("test",), n=30, gz=False)
        path = folder / "t10k-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    elif kind == "mismatch":
        write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[:20])
    else:
        folder.mkdir()
        (folder / "notes.txt").write_text("no data")
    return folder


@pytest.mark.parametrize("kind, message", [("magic", "magic number"), ("truncated", "truncated"),
                                           ("mismatch", "30 images but"), ("empty", "no MNIST IDX files found")])
def test_bad_data_directories(tmp_path, kind, message):
    result = _train(tmp_path / "run", "--data-dir", str(_bad_idx_dir(tmp_path, kind)))
    # damaged data files are not a misuse of the options: status 1, no "Try --help"
    assert result.exit_code == 1 and message in result.output and "Try" not in result.output, result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar"], "Invalid value for '--dataset'"),
    (["--model", "vgg"], "Invalid value for '--model'"),
    (["--epochs", "1"], "either --iterations or --epochs, not both"),
    (["--output-size", "5"], "output size 5 is smaller than the 10 classes"),
    (["--data-dir", "/nonexistent/dir"], "does not exist"),
    (["--num-tasks", "0"], "--num-tasks"),
    (["--optimizer", "adam", "--momentum", "0.5"], "adam takes no momentum"),
])
def test_bad_options(tmp_path, args, message):
    result = _train(tmp_path / "run", *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_split_mnist_with_too_many_tasks(tmp_path):
    result = CliRunner().invoke(main, ["train", "--dataset", "split-mnist", "--num-tasks", "6", *TINY, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "at most 5 tasks" in result.output


def test_resume_with_different_options_is_refused(tmp_path):
    assert _train(tmp_path / "run").exit_code == 0
    result = _train(tmp_path / "run", "--seed", "3")
    assert result.exit_code == 1 and "different config" in result.output and "seed: 0 -> 3" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_asked_without_gpu(tmp_path):
    result = _train(tmp_path / "run", "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA GPU" in result.output


@pytest.mark.cuda
def test_train_on_cuda(tmp_path):
    result = _train(tmp_path / "run", "--device", "cuda")
    assert result.exit_code == 0, result.output


def test_data_seed_fixes_the_tasks_and_seed_the_masks(tmp_path):
    """Two runs with one --data-seed and different --seed train on the same permutations with other masks; without
    --data-seed the tasks follow --seed, as before the option existed."""
    from supsup_core.data.datasets import load_digits
    from supsup_core.data.streams import build_stream
    from supsup_core.train.runs import RunDirectory

    for name, args in (("a", ["--data-seed", "5", "--seed", "1"]), ("b", ["--data-seed", "5", "--seed", "2"]),
                       ("c", ["--seed", "5"])):
        result = _train(tmp_path / name, *args)
        assert result.exit_code == 0, result.output
    a, b, c = (RunDirectory.open(tmp_path / name).config for name in "abc")
    assert (a.stream.seed, b.stream.seed, c.stream.seed) == (5, 5, 5) and (a.seed, b.seed, c.seed) == (1, 2, 5)
    digits = load_digits()
    assert torch.equal(build_stream(a.stream, data=digits).permutations, build_stream(b.stream, data=digits).permutations)
    masks = [(tmp_path / name / "masks" / "task_001.safetensors").read_bytes() for name in "ab"]
    assert masks[0] != masks[1]
    refused = _train(tmp_path / "d", "--data-seed", "-1")
    assert refused.exit_code == 2 and "--data-seed" in refused.output and not (tmp_path / "d").exists()


def test_a_larger_num_tasks_grows_the_run_and_a_smaller_one_is_refused(tmp_path):
    assert _train(tmp_path / "run").exit_code == 0
    before = (tmp_path / "run" / "masks" / "task_001.safetensors").read_bytes()
    grown = _train(tmp_path / "run", "--num-tasks", "3")
    assert grown.exit_code == 0, grown.output
    assert "resuming" in grown.output and "2 of 3 task(s) already finished" in grown.output
    assert (tmp_path / "run" / "masks" / "task_001.safetensors").read_bytes() == before
    assert len(json.loads((tmp_path / "run" / "results.json").read_text())["accuracy_matrix"]) == 3
    shrunk = _train(tmp_path / "run", "--num-tasks", "2")
    assert shrunk.exit_code == 1 and "stream.num_tasks: 3 -> 2" in shrunk.output
