"""The task-module protocol: which modules hold per-task state, and the model-level helpers over them."""
import pytest
import torch

from supsup_core.nn import modes
from supsup_core.nn.layers import MaskedLayer
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.nn.resnets import TaskBatchNorm2d
from supsup_core.nn.task_modules import TaskModule, task_modules


def test_task_modules_are_the_masked_layers_and_the_per_task_batchnorms_in_order():
    model = build_model(ModelConfig(name="resnet18", input_shape=(3, 8, 8), num_tasks=1, width=2))
    found = task_modules(model)
    assert all(isinstance(m, TaskModule) for m in found.values())
    assert list(found) == [name for name, m in model.named_modules() if isinstance(m, (MaskedLayer, TaskBatchNorm2d))]
    others = modes.other_task_modules(model)
    assert others and all(isinstance(m, TaskBatchNorm2d) for m in others.values())
    assert set(others) | set(modes.masked_layers(model)) == set(found)


def test_a_task_module_must_implement_the_protocol():
    class Half(TaskModule):
        def set_task(self, task_id):
            pass

    with pytest.raises(TypeError, match="abstract"):
        Half()


def test_adding_a_task_reaches_every_task_module_and_init_starts_a_layer_at_given_scores(generator):
    model = build_model(ModelConfig(name="resnet18", input_shape=(3, 8, 8), num_tasks=0, width=2))
    first = next(iter(modes.masked_layers(model)))
    start = torch.full(modes.masked_layers(model)[first].mask_shape, 0.25)
    assert modes.add_task(model, {first: {"scores": start}}, generator) == 0
    assert {m.num_tasks for m in task_modules(model).values()} == {1}
    assert torch.equal(modes.masked_layers(model)[first].task_scores(0).detach(), start)
    params = modes.task_parameters(model, 0)
    assert len(params) == len(modes.masked_layers(model))  # BatchNorm statistics are not trained
    modes.freeze_task(model, 0)
    assert modes.task_parameters(model, 0) == []


def test_state_out_and_in_round_trips_a_masked_layer(generator):
    model = build_model(ModelConfig(name="fc1024", input_shape=(1, 8, 8), num_tasks=1, width=8), generator)
    layer = next(iter(modes.masked_layers(model).values()))
    state = layer.task_state(0)
    assert set(state) == {"mask"} and state["mask"].dtype == torch.bool
    assert torch.equal(layer.task_mask(layer.add_frozen_task(state)).bool(), state["mask"])
