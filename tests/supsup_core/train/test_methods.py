"""The method registry and the task-module protocol end to end: a method's own per-task state goes through a
run directory (written, read back, resumed) with no special case for it in the trainer or the run."""
import json

import pytest
import torch
from torch import nn

from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn import modes
from supsup_core.nn.method import Method, SupSup
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.nn.task_modules import TaskModule, task_modules
from supsup_core.train import methods
from supsup_core.train.continual import train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig, evaluate_tasks, make_optimizer


class Context(TaskModule):
    """A toy per-task module: a trainable gain vector per task, ±1 signs kept alongside (a PSP-like context)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width, self.gains, self.signs, self._task = width, nn.ParameterList(), [], 0

    @property
    def num_tasks(self) -> int:
        return len(self.gains)

    def add_task(self, init=None, *, generator=None) -> int:
        self.gains.append(nn.Parameter(torch.ones(self.width)))
        self.signs.append(torch.rand(self.width, generator=generator) < 0.5)
        return len(self.gains) - 1

    def set_task(self, task_id: int) -> None:
        self._task = task_id

    def task_state(self, task_id: int) -> dict[str, torch.Tensor]:
        return {"gain": self.gains[task_id].detach().clone(), "signs": self.signs[task_id]}

    def add_frozen_task(self, state) -> int:
        self.gains.append(nn.Parameter(state["gain"].clone(), requires_grad=False))
        self.signs.append(state["signs"].clone())
        return len(self.gains) - 1

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        return [self.gains[task_id]] if self.gains[task_id].requires_grad else []

    def freeze_task(self, task_id: int) -> None:
        self.gains[task_id].requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sign = self.signs[self._task].to(x.dtype) * 2 - 1
        return x.flatten(1) * self.gains[self._task] * sign


class ContextThenSupSup(Method):
    name = "toy-context"

    def build_model(self, config: ModelConfig, generator=None) -> nn.Module:
        return nn.Sequential(Context(64), build_model(config, generator))


@pytest.fixture
def toy_method(monkeypatch):
    monkeypatch.setitem(methods.METHODS, ContextThenSupSup.name, ContextThenSupSup)
    return ContextThenSupSup.name


def _config(method="supsup", **kw) -> RunConfig:
    return RunConfig(model=ModelConfig(name="fc1024", input_shape=(1, 8, 8), num_tasks=0, width=16),
                     stream=StreamConfig(dataset="permuted-mnist", num_tasks=2, seed=1),
                     train=TrainConfig(iterations=10, batch_size=64, lr=1e-2), seed=1, method=method, **kw)


def test_the_registry_holds_supsup_and_the_baselines_and_refuses_unknown_names():
    assert set(methods.METHODS) == {"supsup", "psp-rotation", "psp-complex", "psp-binary", "batchensemble", "finetune",
                                    "finetune-multihead", "separate"}
    assert isinstance(methods.get_method("supsup"), SupSup)
    assert all(methods.get_method(name).name == name for name in methods.METHODS)
    with pytest.raises(ValueError, match=r"method must be one of \[.*'supsup'.*\]; got 'psp'"):
        methods.get_method("psp")
    with pytest.raises(ValueError, match="method must be one of"):
        _config(method="psp")


def test_the_method_is_recorded_in_config_json_and_a_run_resumes_only_with_it(tmp_path, toy_method):
    run = RunDirectory.create(tmp_path / "run", _config(method=toy_method))
    run.close()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == toy_method
    with pytest.raises(ValueError, match="method: 'toy-context' -> 'supsup'"):
        RunDirectory.create(tmp_path / "run", _config())


def test_save_scores_and_transfer_need_a_method_that_trains_scores(toy_method):
    with pytest.raises(ValueError, match="trains no supermask scores"):
        _config(method=toy_method, transfer=True)
    assert _config(transfer=True).save_scores is True  # transfer reads the saved scores back


def test_a_method_with_its_own_task_state_trains_saves_and_reloads_it(tmp_path, toy_method):
    digits = load_digits()
    config = _config(method=toy_method)
    run = RunDirectory.create(tmp_path / "run", config)
    result = train_run(run, stream=build_stream(config.stream, data=digits))
    task = run.read_task(1)
    assert set(task.modules["0"]) == {"gain", "signs"} and task.modules["0"]["signs"].dtype == torch.bool
    assert not torch.equal(task.modules["0"]["gain"], torch.ones(64))  # the context was trained
    assert set(task.masks) == set(modes.masked_layers(run.load_model()))  # the supermasks are there too
    model = run.load_model()
    assert list(task_modules(model))[0] == "0" and modes.num_tasks(model) == 2
    assert torch.equal(model[0].gains[1].detach(), task.modules["0"]["gain"])
    assert evaluate_tasks(model, build_stream(config.stream, data=digits), range(2)) == result.accuracy_matrix[-1]
    assert run.finished_tasks() == {0, 1} and run.read_results().method == toy_method


def test_a_frozen_task_trains_nothing_so_the_optimizer_refuses_it():
    model = build_model(ModelConfig(name="fc1024", input_shape=(1, 8, 8), num_tasks=1, width=8))
    modes.freeze_task(model, 0)
    assert modes.task_parameters(model, 0) == []
    with pytest.raises(ValueError, match="task 0 of this model has nothing to train: it is frozen"):
        make_optimizer(model, 0, TrainConfig())


def test_the_nn_scenario_refuses_a_method_other_than_supsup(tmp_path, toy_method):
    from supsup_core.infer.nn_training import NNConfig, train_nn_run

    config = _config(method=toy_method)
    run = RunDirectory.create(tmp_path / "run", config)
    with pytest.raises(ValueError, match="NN scenario allocates SupSup supermasks, but the run's method is 'toy-context'"):
        train_nn_run(run, NNConfig(train=config.train))
    assert not run.saved_tasks() and not run.results_path.exists()


def test_method_train_config_takes_given_fields_then_the_methods_reference_settings():
    config = methods.method_train_config("batchensemble", iterations=5)
    assert (config.optimizer, config.lr, config.shared_lr, config.iterations) == ("adam", 1e-2, 1e-4, 5)
    assert methods.method_train_config("batchensemble", lr=3e-3, shared_lr=None).lr == 3e-3  # None: not given
    supsup = methods.method_train_config("supsup")
    assert (supsup.optimizer, supsup.lr, supsup.shared_lr) == ("rmsprop", 1e-4, None)
    with pytest.raises(ValueError, match="method must be one of"):
        methods.method_train_config("psp")
