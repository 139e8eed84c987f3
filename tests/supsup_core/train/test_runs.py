"""Run directories: layout, mask files, validated loads, resume after a crash, config mismatch."""
import dataclasses
import json

import pytest
import torch

from hopfield_masks.files import tensor_checksum
from hopfield_masks.io import load_tensors, save_tensors
from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig
from supsup_core.train import continual
from supsup_core.train.continual import train_run
from supsup_core.train.evaluation import evaluate_gg
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig, evaluate_tasks


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _config(model="lenet", dataset="permuted-mnist", num_tasks=3, iterations=15, width=16, **kw) -> RunConfig:
    return RunConfig(model=ModelConfig(name=model, input_shape=(1, 8, 8), num_tasks=0, width=width, **kw),
                     stream=StreamConfig(dataset=dataset, num_tasks=num_tasks, seed=1),
                     train=TrainConfig(iterations=iterations, batch_size=64, lr=1e-2), seed=1)


def _train(path, digits, config=None):
    config = config or _config()
    run = RunDirectory.create(path, config)
    return run, train_run(run, stream=build_stream(config.stream, data=digits))


def _files(path):
    """Every file of a run but its lock file (whose content names the holder) by relative path."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_layout_results_and_no_forgetting(tmp_path, digits):
    run, result = _train(tmp_path / "run", digits)
    assert (run.path / ".lock").is_file()
    assert sorted(_files(run.path)) == ["config.json", "masks/task_000.safetensors", "masks/task_001.safetensors",
                                        "masks/task_002.safetensors", "results.csv", "results.json", "weights.safetensors"]
    results = json.loads((run.path / "results.json").read_text())
    matrix = results["accuracy_matrix"]
    assert [len(row) for row in matrix] == [1, 2, 3]
    assert matrix[-1] == [matrix[j][j] for j in range(3)]  # fixed weights: nothing is forgotten
    assert results["bwt"] == 0.0 and results["forgetting_max"] == 0.0 and results["finished"] is True
    d = results["mask_bits_per_task"]
    assert d == 16 * 64 + 5 * 16 + 10 * 5
    assert all(d / 8 <= b < d / 8 + 700 for b in results["mask_bytes_per_task"])  # d/8 bytes of bits + the header
    assert result.metrics["average_accuracy"] == pytest.approx(results["average_accuracy"])


def test_loaded_model_reproduces_the_trained_masks(tmp_path, digits):
    run, result = _train(tmp_path / "run", digits)
    stream = build_stream(run.config.stream, data=digits)
    model = run.load_model()
    assert evaluate_tasks(model, stream, range(3)) == result.accuracy_matrix[-1]
    assert evaluate_gg(run, stream=stream).per_task_accuracy == result.accuracy_matrix[-1]
    masks = run.read_task(1).masks
    assert all(torch.equal(masks[name], layer.task_mask(1).bool()) for name, layer in modes.masked_layers(model).items())


def test_resume_after_crash_continues_and_changes_nothing_written(tmp_path, digits, monkeypatch):
    _train(tmp_path / "straight", digits)
    real = continual.train_task

    def crash_at_task_2(model, task_id, *args, **kwargs):
        if task_id == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(model, task_id, *args, **kwargs)

    monkeypatch.setattr(continual, "train_task", crash_at_task_2)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "crashed", digits)
    before = _files(tmp_path / "crashed")
    assert json.loads(before["results.json"])["finished"] is False and len(json.loads(before["results.json"])["accuracy_matrix"]) == 2
    monkeypatch.setattr(continual, "train_task", real)
    run, result = _train(tmp_path / "crashed", digits)
    after = _files(run.path)
    assert result.resumed_from == 2
    assert all(after[name] == data for name, data in before.items() if name not in ("results.json", "results.csv"))
    straight = _files(tmp_path / "straight")
    assert sorted(after) == sorted(straight) and after["config.json"] == straight["config.json"]
    for name in (n for n in after if n.endswith(".safetensors")):  # same content (safetensors orders metadata freely)
        (a, meta_a), (b, meta_b) = load_tensors(run.path / name), load_tensors(tmp_path / "straight" / name)
        assert meta_a == meta_b and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads(after["results.json"])["accuracy_matrix"] == json.loads(straight["results.json"])["accuracy_matrix"]


def test_crash_between_mask_and_results_evaluates_without_retraining(tmp_path, digits, monkeypatch):
    real = continual.evaluate_tasks
    monkeypatch.setattr(continual, "evaluate_tasks", lambda model, stream, ids, **kw: (_ for _ in ()).throw(RuntimeError("boom"))
                        if len(ids) == 2 else real(model, stream, ids, **kw))
    with pytest.raises(RuntimeError):
        _train(tmp_path / "run", digits)
    mask_1 = (tmp_path / "run" / "masks" / "task_001.safetensors").read_bytes()
    monkeypatch.setattr(continual, "evaluate_tasks", real)
    trained = []
    real_train = continual.train_task
    monkeypatch.setattr(continual, "train_task", lambda m, t, *a, **k: trained.append(t) or real_train(m, t, *a, **k))
    run, result = _train(tmp_path / "run", digits)
    assert trained == [2] and (run.mask_path(1)).read_bytes() == mask_1
    assert run.read_results().tasks[1].trained is False and len(result.accuracy_matrix) == 3


def test_resume_with_a_different_config_is_refused(tmp_path, digits):
    _train(tmp_path / "run", digits, _config(num_tasks=1))
    with pytest.raises(ValueError, match=r"different config \(.*train.iterations: 15 -> 20.*Repeat the original options"):
        RunDirectory.create(tmp_path / "run", _config(num_tasks=1, iterations=20))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    with pytest.raises(ValueError, match="holds no run"):
        RunDirectory.create(tmp_path / "other", _config())
    with pytest.raises(ValueError, match="not a run directory"):
        RunDirectory.open(tmp_path / "other")


def test_corrupted_and_foreign_mask_files_are_rejected(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=2))
    run.mask_path(0).write_bytes(run.mask_path(0).read_bytes()[:50])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        run.read_task(0)
    run.mask_path(1).rename(run.mask_path(0))
    with pytest.raises(ValueError, match="holds task '1', not 0; it was renamed"):
        run.read_task(0)


def test_deleted_masks_and_scores(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, dataclasses.replace(_config(num_tasks=2), save_scores=True))
    scores = run.read_scores(1)
    mask = run.read_task(1).masks
    assert all(torch.equal(scores[name] >= 0, mask[name]) for name in mask)  # threshold masks
    run.delete_task_masks(0)
    with pytest.raises(ValueError, match="task 0 has no mask file"):
        run.load_model(num_tasks=2)


def test_per_task_batchnorm_statistics_are_stored(tmp_path, digits):
    config = _config(model="resnet18", dataset="split-mnist", num_tasks=2, iterations=3, width=2)
    run, result = _train(tmp_path / "run", digits, config)
    task = run.read_task(1)
    assert set(task.modules["stem_bn"]) == {"running_mean", "running_var", "num_batches_tracked"}
    model = run.load_model()
    assert set(task.masks) == set(modes.masked_layers(model)) and "stem_bn" not in task.masks  # statistics are no mask
    assert torch.equal(model.stem_bn.norms[1].running_mean, task.modules["stem_bn"]["running_mean"])
    assert evaluate_tasks(model, build_stream(config.stream, data=digits), range(2)) == result.accuracy_matrix[-1]


def test_model_must_fit_the_stream(tmp_path, digits):
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, output_size=5, width=8),
                       stream=StreamConfig(dataset="split-mnist", num_tasks=2), train=TrainConfig(iterations=1))
    run = RunDirectory.create(tmp_path / "run", config)
    with pytest.raises(ValueError, match="output size 5 is smaller than the 10 classes.*--output-size 10"):
        train_run(run, stream=build_stream(config.stream, data=digits))
    with pytest.raises(ValueError, match="num_tasks=0"):
        RunConfig(model=ModelConfig(name="lenet", num_tasks=1), stream=config.stream, train=config.train)


def test_a_mask_file_naming_other_layers_is_refused(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=1))
    tensors, meta = load_tensors(run.mask_path(0))
    # a well-formed file whose metadata and tensors name a layer this run's model does not have
    renamed = {key.replace("layers.0", "layers.9"): value for key, value in tensors.items()}
    meta = {key: value for key, value in meta.items() if key != "checksum"}
    meta["bits"] = meta["bits"].replace('"layers.0.mask"', '"layers.9.mask"')
    save_tensors(run.mask_path(0), renamed, {**meta, "checksum": tensor_checksum(renamed, meta)})
    assert "layers.9" in run.read_task(0).masks
    with pytest.raises(ValueError, match="belongs to another run"):
        run.load_model()


def _as_format_2(path):
    """Rewrite a run as the code before format 3 wrote it: no method, masks as "mask.<layer>", results without schema."""
    config = json.loads((path / "config.json").read_text())
    del config["method"]
    config["format_version"] = 2
    config["model"]["sparsity"] = config["model"].pop("density")
    (path / "config.json").write_text(json.dumps(config))
    for file in [path / "weights.safetensors", *sorted((path / "masks").glob("*.safetensors"))]:
        tensors, meta = load_tensors(file)
        meta = {k: v for k, v in meta.items() if k != "checksum"} | {"format_version": "2"}
        if "bits" in meta:
            meta["masks"] = json.dumps({k[: -len(".mask")]: v for k, v in json.loads(meta.pop("bits")).items()})
            tensors = {f"mask.{k[len('bits.'):-len('.mask')]}" if k.startswith("bits.") else k: v for k, v in tensors.items()}
        save_tensors(file, tensors, {**meta, "checksum": tensor_checksum(tensors, meta)})
    results = json.loads((path / "results.json").read_text())
    for key in ("schema_version", "finished_tasks", "method"):
        del results[key]
    (path / "results.json").write_text(json.dumps(results))


def test_a_format_2_run_is_read_and_resumes_without_retraining(tmp_path, digits, monkeypatch):
    run, first = _train(tmp_path / "run", digits)
    masks = {t: run.read_task(t).masks for t in range(3)}
    run.close()
    _as_format_2(run.path)
    old = RunDirectory.open(run.path)
    assert old.config == run.config and old.config.method == "supsup" and old.config.model.density == 0.5
    assert all(torch.equal(old.read_task(t).masks[k], m) for t in range(3) for k, m in masks[t].items())
    assert old.finished_tasks() == {0, 1, 2}
    trained = []
    monkeypatch.setattr(continual, "train_task", lambda *a, **k: trained.append(a[1]))
    again, result = _train(run.path, digits)  # the same options: no config difference is reported
    assert trained == [] and result.accuracy_matrix == first.accuracy_matrix and result.resumed_from == 3
    assert json.loads((run.path / "config.json").read_text())["format_version"] == 3  # the files it writes now are


def test_a_task_state_key_the_file_cannot_separate_from_its_module_is_refused_before_writing(tmp_path, digits):
    run, _ = _train(tmp_path / "run", digits, _config(num_tasks=1))
    model = run.load_model()
    layer = next(iter(modes.masked_layers(model).values()))
    layer.task_state = lambda task_id: {"ctx.gain": torch.ones(2)}
    before = run.mask_path(0).read_bytes()
    with pytest.raises(ValueError, match="keys must be non-empty strings without '.'"):
        run.write_task(model, 0)
    assert run.mask_path(0).read_bytes() == before


def test_a_finished_set_with_a_gap_rebuilds_the_rows_from_the_gap_on(tmp_path, digits, monkeypatch):
    run, first = _train(tmp_path / "run", digits)
    results = run.read_results()
    results.finished_tasks = {0, 2}  # e.g. task 1's evaluation was lost
    run.write_results(results)
    _, again = _train(run.path, digits)
    assert again.resumed_from == 1 and again.accuracy_matrix == first.accuracy_matrix
    assert run.finished_tasks() == {0, 1, 2}


def test_a_run_grows_with_more_tasks_as_if_it_had_started_with_them(tmp_path):
    """Resuming with a larger num_tasks trains only the new tasks; files and rows equal a run started with all of
    them. Fewer tasks, other changes alongside, and methods with a full accuracy matrix are refused."""
    import dataclasses

    from supsup_core.data.datasets import load_digits
    from supsup_core.data.streams import StreamConfig, build_stream
    from supsup_core.nn.models import ModelConfig
    from supsup_core.train.continual import train_run
    from supsup_core.train.training import TrainConfig

    def config(num_tasks, **fields):
        return RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=16),
                         stream=StreamConfig(dataset="permuted-mnist", num_tasks=num_tasks, seed=3),
                         train=TrainConfig(iterations=5, batch_size=32, lr=1e-2), seed=1, **fields)

    digits = load_digits()
    resumed = {}
    for path, steps in ((tmp_path / "grown", (2, 3)), (tmp_path / "whole", (3,))):
        for num_tasks in steps:
            with RunDirectory.create(path, config(num_tasks)) as run:
                resumed[path.name, num_tasks] = train_run(run, stream=build_stream(config(num_tasks).stream, data=digits)).resumed_from
    assert resumed == {("grown", 2): 0, ("grown", 3): 2, ("whole", 3): 0}  # growing trained task 2 only
    assert RunDirectory.open(tmp_path / "grown").config.stream.num_tasks == 3
    for task in range(3):
        name = f"masks/task_{task:03d}.safetensors"
        assert (tmp_path / "grown" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    grown, whole = (RunDirectory.open(tmp_path / n).read_results() for n in ("grown", "whole"))
    assert grown.accuracy_matrix == whole.accuracy_matrix and grown.finished and grown.num_tasks == 3
    with pytest.raises(ValueError, match=r"stream.num_tasks: 3 -> 2.*or more --num-tasks, to grow it"):
        RunDirectory.create(tmp_path / "grown", config(2))
    with pytest.raises(ValueError, match=r"seed: 1 -> 2"):
        RunDirectory.create(tmp_path / "grown", dataclasses.replace(config(4), seed=2))
    RunDirectory.create(tmp_path / "psp", config(2, method="psp-binary")).close()
    with pytest.raises(ValueError, match="records every task's accuracy after each task .* new --out directory"):
        RunDirectory.create(tmp_path / "psp", config(3, method="psp-binary"))


def test_results_csv_holds_the_matrix_in_long_form_and_the_metrics(tmp_path):
    import csv

    from supsup_core.data.datasets import load_digits
    from supsup_core.data.streams import StreamConfig, build_stream
    from supsup_core.nn.models import ModelConfig
    from supsup_core.train.continual import train_run
    from supsup_core.train.training import TrainConfig

    for method in ("supsup", "psp-binary"):
        config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=16),
                           stream=StreamConfig(dataset="permuted-mnist", num_tasks=2),
                           train=TrainConfig(iterations=3, batch_size=32), method=method)
        with RunDirectory.create(tmp_path / method, config) as run:
            train_run(run, stream=build_stream(config.stream, data=load_digits()))
            results = run.read_results()
        rows = list(csv.DictReader((tmp_path / method / "results.csv").open()))
        matrix = results.accuracy_matrix_full or results.accuracy_matrix
        cells = {(int(r["trained_through"]), int(r["eval_task"])): float(r["value"]) for r in rows if r["kind"] == "accuracy"}
        assert cells == {(i, j): a for i, row in enumerate(matrix) for j, a in enumerate(row)}
        metrics = {r["name"]: float(r["value"]) for r in rows if r["kind"] == "metric"}
        assert metrics["average_accuracy"] == results.average_accuracy and metrics["bwt"] == results.bwt
        assert ("fwt" in metrics) == (method == "psp-binary") and len(cells) == (4 if method == "psp-binary" else 3)
