"""The weights a method shares between tasks, kept by the trainer in shared.safetensors: a run stopped or crashed at
any task boundary resumes to the bytes of an uninterrupted one; what cannot be repaired is refused; the full
accuracy matrix and forward transfer of methods that define them."""
import math
import shutil

import pytest
import torch

from supsup_core.train import continual
from supsup_core.train.metrics import fwt
from supsup_core.train.runs import RunDirectory
from supsup_core.train.training import TrainConfig, make_shared_optimizer
from tests.supsup_core.baselines.helpers import (
    accuracies,
    all_bytes,
    fixed_inputs,
    flip_data_bit,
    interrupt_after,
    resume,
    run_bytes,
    run_config,
    train,
)

SHARING = ("psp-binary", "finetune", "batchensemble")
"""A method that trains its shared weights on every task (two kinds) and one that trains them on task 0 only."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``reference(method)``: the folder of an uninterrupted 3-task run of ``method`` (trained once per module)."""
    runs = {}

    def get(method):
        if method not in runs:
            runs[method] = tmp_path_factory.mktemp(method) / "run"
            train(runs[method], run_config(method))
        return runs[method]

    return get


@pytest.fixture
def copy_of(reference, tmp_path):
    """``copy_of(method)``: a copy of the reference run to damage."""
    def get(method):
        return shutil.copytree(reference(method), tmp_path / "run")
    return get


@pytest.fixture
def resume_counted(monkeypatch):
    """``resume_counted(path)``: resume the run in ``path`` and return the task ids it trained."""
    def resume_run(path):
        calls, real = [], continual.train_task
        with monkeypatch.context() as patch:
            patch.setattr(continual, "train_task", lambda model, t, *a, **k: calls.append(t) or real(model, t, *a, **k))
            resume(path)
        return calls
    return resume_run


def assert_same_run(path, reference_path):
    assert run_bytes(path) == run_bytes(reference_path)
    assert accuracies(path) == accuracies(reference_path)


# -------------------------------------------------------------------------------------------------- resume
# complex weights and optimizer state, and a per-task head beside a shared trunk, too
@pytest.mark.parametrize("method, stop", [(m, stop) for m in SHARING for stop in (0, 1)]
                         + [("psp-complex", 1), ("finetune-multihead", 0)])
def test_a_run_stopped_at_a_task_boundary_resumes_to_the_same_bytes(tmp_path, reference, resume_counted, method, stop):
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(path, run_config(method), on_task_end=interrupt_after(stop))
    assert RunDirectory.open(path).finished_tasks() == set(range(stop + 1))
    assert resume_counted(path) == list(range(stop + 1, 3))
    assert_same_run(path, reference(method))


@pytest.mark.parametrize("method, crash_at", [("psp-binary", 1), ("finetune", 1), ("batchensemble", 0)])
def test_a_crash_between_the_task_file_and_the_shared_state_retrains_from_the_last_shared_state(
        tmp_path, reference, monkeypatch, resume_counted, method, crash_at):
    path, real = tmp_path / "run", RunDirectory.write_shared

    def write_shared(self, model, task_id, optimizer):
        if task_id == crash_at:
            raise RuntimeError("killed while writing the shared state")
        return real(self, model, task_id, optimizer)

    monkeypatch.setattr(RunDirectory, "write_shared", write_shared)
    with pytest.raises(RuntimeError, match="killed"):
        train(path, run_config(method))
    assert RunDirectory.open(path).saved_tasks() == list(range(crash_at + 1))  # the task file was written first
    monkeypatch.setattr(RunDirectory, "write_shared", real)
    assert resume_counted(path) == list(range(crash_at, 3))
    assert_same_run(path, reference(method))


def test_an_older_shared_state_makes_later_task_files_stale_and_they_are_retrained(tmp_path, reference, resume_counted):
    path, after_0 = tmp_path / "run", {}
    train(path, run_config("psp-binary"),
          on_task_end=lambda t, row: after_0.setdefault("bytes", (path / "shared.safetensors").read_bytes()))
    (path / "shared.safetensors").write_bytes(after_0["bytes"])  # as if tasks 1 and 2 ended before their shared state
    assert resume_counted(path) == [1, 2]
    assert_same_run(path, reference("psp-binary"))


# ------------------------------------------------------------------------------------- what is refused, what is repaired
@pytest.mark.parametrize("method, task_id", [("psp-binary", 1), ("psp-binary", 2), ("finetune", 0), ("batchensemble", 0)])
def test_a_lost_task_file_whose_shared_weights_trained_on_is_refused_and_nothing_written(copy_of, method, task_id):
    path = copy_of(method)
    (path / "masks" / f"task_{task_id:03d}.safetensors").unlink()
    before = all_bytes(path)
    with pytest.raises(ValueError, match=rf"task {task_id} of .* has no task file, but the weights its method \({method}\) "
                                         r"shares between tasks were trained further after it .*cannot be trained again alone\. "
                                         "Train the run again into a new --out directory"):
        resume(path)
    assert all_bytes(path) == before


@pytest.mark.parametrize("task_id", [1, 2])
def test_a_lost_batchensemble_task_after_the_first_is_retrained_alone_to_the_same_bytes(copy_of, reference, resume_counted, task_id):
    path = copy_of("batchensemble")
    (path / "masks" / f"task_{task_id:03d}.safetensors").unlink()
    assert resume_counted(path) == [task_id]
    assert_same_run(path, reference("batchensemble"))


def test_lost_results_rows_are_rebuilt_where_the_shared_weights_they_need_are_kept(copy_of, reference, resume_counted):
    path = copy_of("batchensemble")  # its shared weights are the same after every task
    (path / "results.json").unlink()
    assert resume_counted(path) == []
    assert_same_run(path, reference("batchensemble"))


def test_lost_results_rows_that_need_older_shared_weights_are_refused(copy_of):
    path = copy_of("psp-binary")
    (path / "results.json").unlink()
    before = all_bytes(path)
    with pytest.raises(ValueError, match=r"has lost the row of task 0, which needs the shared weights as they were after task 0; "
                                         r"the run keeps only the latest \(after task 2\)\. Train the run again into a new "
                                         r"--out directory \(or restore results.json\)"):
        resume(path)
    assert all_bytes(path) == before


def test_a_corrupted_shared_state_is_refused_with_a_checksum_error(copy_of):
    path = copy_of("psp-binary")
    flip_data_bit(path / "shared.safetensors", at=5)
    before = all_bytes(path)
    match = "shared weights .*shared.safetensors is corrupted: its tensors and metadata do not match its checksum"
    with pytest.raises(ValueError, match=match):
        resume(path)
    with pytest.raises(ValueError, match=match):
        RunDirectory.open(path).load_model()
    assert all_bytes(path) == before


# --------------------------------------------------------------------------------------- the file itself
def test_the_shared_state_round_trips_the_weights_and_an_optimizer_with_momentum(tmp_path):
    config = run_config("finetune", optimizer="rmsprop", lr=1e-2, momentum=0.5, shared_lr=3e-3)
    run = RunDirectory.create(tmp_path / "run", config)
    method, x = config.build_method(), fixed_inputs(32)
    y = torch.arange(32) % 10

    def model_and_optimizer():
        model = run.load_model(num_tasks=0)
        return model, make_shared_optimizer(method.shared_parameters(model), config.train)

    def step(model, optimizer):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    model, optimizer = model_and_optimizer()
    assert optimizer.param_groups[0]["lr"] == 3e-3 and optimizer.param_groups[0]["momentum"] == 0.5  # shared_lr, not lr
    for _ in range(3):
        step(model, optimizer)
    run.write_shared(model, 0, optimizer)
    shared = run.read_shared()
    assert shared.after_task == 0 and shared.weights.keys() == model.state_dict().keys()
    assert all(torch.equal(shared.weights[key], value) for key, value in model.state_dict().items())
    saved = optimizer.state_dict()
    assert shared.optimizer["param_groups"] == saved["param_groups"]
    assert shared.optimizer["state"].keys() == saved["state"].keys()
    for index, state in saved["state"].items():
        assert "momentum_buffer" in state and state.keys() == shared.optimizer["state"][index].keys()
        assert all(torch.equal(shared.optimizer["state"][index][key], value) for key, value in state.items())
    resumed, resumed_optimizer = model_and_optimizer()  # a later process: the same next step
    resumed_optimizer.load_state_dict(shared.optimizer)
    step(model, optimizer), step(resumed, resumed_optimizer)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed.parameters()))
    run.close()


@pytest.mark.parametrize("shared_lr", [0.0, -1e-3, math.nan, math.inf])
def test_train_config_refuses_a_shared_lr_that_is_not_a_positive_number(shared_lr):
    with pytest.raises(ValueError, match="shared_lr.*--shared-lr 1e-4, or leave it out for --lr"):
        TrainConfig(shared_lr=shared_lr)


# ------------------------------------------------------------------------------------------ results.json
@pytest.mark.parametrize("method", ["psp-binary", "finetune"])
def test_methods_with_untrained_tasks_record_the_full_matrix_and_forward_transfer(reference, method):
    results = accuracies(reference(method))
    matrix, full, initial = results["accuracy_matrix"], results["accuracy_matrix_full"], results["initial_accuracy"]
    assert len(full) == len(matrix) == len(initial) == 3 and all(len(row) == 3 for row in full)
    assert [row[: i + 1] for i, row in enumerate(full)] == matrix
    assert all(0 <= a <= 1 for row in full for a in row) and all(0 <= a <= 1 for a in initial)
    assert results["fwt"] == fwt(full, initial)


def test_batchensemble_and_supsup_keep_no_full_matrix(tmp_path, reference):
    train(tmp_path / "supsup", run_config("supsup", num_tasks=2, lr=1e-2))
    for path in (tmp_path / "supsup", reference("batchensemble")):
        results = accuracies(path)
        assert results["accuracy_matrix_full"] is None and results["initial_accuracy"] is None and results["fwt"] is None
    assert not (tmp_path / "supsup" / "shared.safetensors").exists()


def test_train_task_refuses_a_tensor_that_both_optimizers_would_step():
    from supsup_core.baselines.bounds import FineTune
    from supsup_core.nn.models import ModelConfig
    from supsup_core.train.training import (
        TrainConfig,
        make_shared_optimizer,
        task_generator,
        train_task,
    )

    method = FineTune()
    model = method.build_model(ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=8))
    shared = make_shared_optimizer(method.shared_parameters(model), TrainConfig(iterations=1))
    with pytest.raises(ValueError, match="stepped twice per batch"):
        train_task(model, 0, None, TrainConfig(iterations=1), generator=task_generator(0, 0),
                   params=list(model.parameters())[:1], shared_optimizer=shared)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_complex_psp_weights_train_with_every_optimizer(tmp_path, optimizer):
    """torch's fused SGD and Adam refuse complex tensors: PSP's complex weights take the unfused ones."""
    from supsup_core.data.datasets import load_digits
    from supsup_core.data.streams import StreamConfig, build_stream
    from supsup_core.nn.models import ModelConfig
    from supsup_core.train.continual import train_run
    from supsup_core.train.runs import RunConfig, RunDirectory
    from supsup_core.train.training import TrainConfig

    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=8),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=2),
                       train=TrainConfig(iterations=3, batch_size=16, optimizer=optimizer, lr=1e-3), method="psp-complex")
    with RunDirectory.create(tmp_path / "run", config) as run:
        train_run(run, stream=build_stream(config.stream, data=load_digits()))
        shared = run.read_shared()
    assert shared.after_task == 1 and shared.weights["layers.0.weight"].dtype == torch.complex64
    assert shared.optimizer["state"]  # the optimizer kept over the complex weights was saved


def test_a_task_file_the_shared_weights_have_not_caught_up_with_is_not_loaded_and_resume_retrains_it(tmp_path):
    """A crash between write_task(1) and write_shared(1) leaves task 1's file beside the weights after task 0:
    loading, GG and GN evaluation leave it out (or refuse it by name), and resuming trains it again."""
    from supsup_core.nn import modes
    from supsup_core.train.evaluation import evaluate_gg
    from tests.supsup_core.baselines.helpers import (
        interrupt_after,
        resume,
        run_config,
        train,
    )

    config = run_config("psp-binary", num_tasks=2)
    first, path = tmp_path / "first", tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(first, config, on_task_end=interrupt_after(0))
    train(path, config)
    finished = (path / "shared.safetensors").read_bytes()
    (path / "shared.safetensors").write_bytes((first / "shared.safetensors").read_bytes())  # the weights after task 0
    run = RunDirectory.open(path)
    assert run.saved_tasks() == [0, 1] and run.trained_tasks() == [0]
    assert modes.num_tasks(run.load_model()) == 1 and len(evaluate_gg(run).per_task_accuracy) == 1
    with pytest.raises(ValueError, match="task 1's file .* was written after the weights its method shares were last saved"):
        run.load_model(num_tasks=2)
    resume(path)
    assert (path / "shared.safetensors").read_bytes() == finished and RunDirectory.open(path).trained_tasks() == [0, 1]


def test_a_shared_state_of_another_width_is_refused_by_name(tmp_path):
    from tests.supsup_core.baselines.helpers import run_config, train

    train(tmp_path / "narrow", run_config("finetune", num_tasks=1))
    wide = run_config("finetune", num_tasks=1)
    wide = type(wide)(**{**wide.__dict__, "model": type(wide.model)(**{**wide.model.__dict__, "width": 24})})
    train(tmp_path / "wide", wide)
    (tmp_path / "wide" / "shared.safetensors").write_bytes((tmp_path / "narrow" / "shared.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"weight 'layers.0.weight' is torch.float32 \(16, 64\), but the run's model has "
                                         r"torch.float32 \(24, 64\); the file belongs to another run"):
        RunDirectory.open(tmp_path / "wide").read_shared()
