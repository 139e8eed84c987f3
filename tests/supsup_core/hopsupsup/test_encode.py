"""What encode_run rests on: the model's mask layout, the models it refuses, the packed-mask size."""
import pytest
import torch
from torch import nn

from supsup_core.hopsupsup import encode
from supsup_core.hopsupsup.encode import mask_layout, packed_mask_nbytes
from supsup_core.nn.models import ModelConfig, build_model


def _model(name, **options):
    return build_model(ModelConfig(name=name, num_tasks=1, **options), torch.Generator().manual_seed(0))


def test_the_layout_lists_every_masked_layer_with_its_mask_shape():
    model = _model("bnnet", input_shape=(64,), width=16)
    layout = mask_layout(model)
    assert layout.dim == sum(torch.Size(shape).numel() for shape in layout.shapes)
    assert layout.dim == 2 * 16  # BNNet's neuron masks: one bit per hidden unit of its two layers


def test_a_model_without_masked_layers_has_nothing_to_encode():
    with pytest.raises(ValueError, match="this model has no masked layers, so there is nothing to encode"):
        mask_layout(nn.Sequential(nn.Linear(4, 2)))


def test_a_model_with_per_task_statistics_is_refused():
    model = _model("resnet18", input_shape=(3, 32, 32), width=4)
    with pytest.raises(ValueError, match="keeps per-task statistics in .*HopSupSup needs a model whose tasks differ by "
                                         "masks alone"):
        encode._check_maskable(model)
    encode._check_maskable(_model("bnnet", input_shape=(64,), width=16))  # masks alone: accepted


@pytest.mark.parametrize("count, dim, nbytes", [(1, 8, 1), (1, 9, 2), (5, 4096, 2560), (3, 1, 3), (0, 100, 0)])
def test_packed_masks_take_a_bit_each_rounded_up_to_whole_bytes_per_mask(count, dim, nbytes):
    assert packed_mask_nbytes(count, dim) == nbytes
