"""Model registry, ModelConfig round trips, fixed weights independent of tasks, per-task BatchNorm."""
import json

import pytest
import torch

from supsup_core.nn import modes
from supsup_core.nn.layers import MaskedBatchNorm
from supsup_core.nn.models import MODELS, ModelConfig, build_model
from supsup_core.nn.resnets import TaskBatchNorm2d

TINY = {"lenet": 12, "fc1024": 16, "bnnet": 16, "resnet18": 4, "resnet50": 2}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_and_runs_each_task(name, generator):
    config = ModelConfig(name=name, input_shape=(1, 12, 12), output_size=13, num_tasks=2, width=TINY[name])
    model = build_model(config, generator)
    for task_id in range(2):
        modes.set_task(model, task_id)
        assert model(torch.randn(4, 1, 12, 12)).shape == (4, 13)
    assert modes.num_tasks(model) == 2
    assert all(not p.requires_grad or n.split(".")[-2] == "scores" for n, p in model.named_parameters())


def test_reference_sizes_of_the_fully_connected_models():
    lenet = build_model(ModelConfig(name="lenet", input_shape=(784,)))
    assert [tuple(layer.weight.shape) for layer in modes.masked_layers(lenet).values()] == [(300, 784), (100, 300), (10, 100)]
    fc = build_model(ModelConfig(name="fc1024", input_shape=(1, 28, 28), output_size=100))
    assert [tuple(layer.weight.shape) for layer in modes.masked_layers(fc).values()] == [(1024, 784), (1024, 1024), (100, 1024)]


def test_bnnet_masks_only_two_batchnorm_layers():
    model = build_model(ModelConfig(name="bnnet", input_shape=(784,), num_tasks=1))
    layers = modes.masked_layers(model)
    assert list(layers) == ["bn1", "bn2"] and all(isinstance(l, MaskedBatchNorm) and l.mask_shape == (2048,) for l in layers.values())
    assert [l.task_mask(0).sum().item() for l in layers.values()] == [2048, 2048]  # scores start at 0: all on


def test_fixed_weights_do_not_depend_on_the_number_of_tasks():
    a = build_model(ModelConfig(name="lenet", input_shape=(64,), num_tasks=0, width=9), torch.Generator().manual_seed(3))
    b = build_model(ModelConfig(name="lenet", input_shape=(64,), num_tasks=4, width=9), torch.Generator().manual_seed(3))
    for (name, la), lb in zip(modes.masked_layers(a).items(), modes.masked_layers(b).values()):
        assert torch.equal(la.weight, lb.weight), name


def test_model_config_round_trips_through_json():
    config = ModelConfig(name="resnet18", input_shape=(3, 32, 32), output_size=100, width=20, mask_kind="topk", density=0.3)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.mask_config().density == 0.3 and config.resolved_width() == 20


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "vgg"}, "model name"),
    ({"name": "lenet", "output_size": 0}, "output_size"),
    ({"name": "lenet", "mask_kind": "random"}, "mask_kind"),
    ({"name": "lenet", "density": 2.0}, "density"),
    ({"name": "lenet", "width": -1}, "width"),
    ({"name": "lenet", "output_size": 10.5}, "output_size must be an integer; got 10.5"),
    ({"name": "lenet", "output_size": True}, "output_size must be an integer"),
    ({"name": "lenet", "width": 32.0}, "width must be an integer"),
    ({"name": "lenet", "num_tasks": 1.5}, "num_tasks must be an integer"),
    ({"name": "lenet", "num_tasks": -1}, "num_tasks must be >= 0"),
    ({"name": "lenet", "input_shape": (1, 28.5, 28)}, "input_shape entries must be an integer; got 28.5"),
    ({"name": "lenet", "input_shape": (1, 0, 28)}, "input_shape entries must be >= 1"),
    ({"name": "lenet", "input_shape": ()}, "at least one size"),
    ({"name": "lenet", "density": float("nan")}, "density must be a finite number; got nan"),
    ({"name": "lenet", "density": float("inf")}, "density must be a finite number"),
])
def test_model_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_resnet_needs_image_inputs():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model(ModelConfig(name="resnet18", input_shape=(784,)))
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({"name": "lenet", "colour": 1})


def test_task_batchnorm_keeps_statistics_per_task():
    bn = TaskBatchNorm2d(3, num_tasks=2)
    bn.train()
    bn.set_task(1)
    bn(torch.randn(8, 3, 4, 4) + 5)
    assert torch.all(bn.task_state(0)["running_mean"] == 0) and torch.all(bn.task_state(1)["running_mean"] > 0.3)
    assert bn.add_frozen_task(bn.task_state(1)) == 2
    assert torch.equal(bn.norms[2].running_mean, bn.norms[1].running_mean) and bn.num_tasks == 3
    with pytest.raises(ValueError, match="out of range"):
        bn.set_task(3)
