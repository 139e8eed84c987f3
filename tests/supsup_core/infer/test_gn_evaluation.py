"""Tests of GN evaluation: GNs/GNu scoring semantics, results, and bad inputs."""
from types import SimpleNamespace

import pytest
import torch

from hopfield_masks.io import write_json
from supsup_core.data.streams import StreamConfig, TaskData, build_stream
from supsup_core.infer.gn_evaluation import (
    GNConfig,
    check_scenario_options,
    evaluate_gn,
    evaluate_run_gn,
)
from supsup_core.infer.nn_results import NNRunResults
from supsup_core.infer.packed_masks import PackedMasks
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig


def _fixed_model(name: str = "lenet"):
    config = ModelConfig(name=name, input_shape=(1, 4, 5), output_size=14, num_tasks=1, width=16, score_init="kaiming_uniform")
    return build_model(config, torch.Generator().manual_seed(0))


def _tasks(num_tasks: int, n: int = 20):
    g = torch.Generator().manual_seed(1)
    return [TaskData(torch.randn(n, 1, 4, 5, generator=g), torch.randint(0, 10, (n,), generator=g)) for _ in range(num_tasks)]


def _duplicated_masks(model) -> PackedMasks:
    # Two tasks with the same mask: every inference ties exactly (packed products are exact sums) and picks
    # the lower position, task 0, so task 1 is always wrong.
    one = PackedMasks.from_model(model)
    return PackedMasks(packed={n: one.packed(n).repeat(2, 1) for n in one.names}, shapes=one.shapes)


@pytest.mark.parametrize("inference", ["oneshot", "binary"])
def test_gnu_zeroes_wrong_groups_and_gns_keeps_their_predictions(inference):
    model, tasks = _fixed_model(), _tasks(2)
    masks = _duplicated_masks(model)
    gnu = evaluate_gn(model, masks, tasks, GNConfig(scenario="GNu", inference=inference, images_per_inference=5))
    gns = evaluate_gn(model, masks, tasks, GNConfig(scenario="GNs", inference=inference, images_per_inference=5))
    assert gnu.per_task_inference_accuracy == [1.0, 0.0]
    assert gnu.task_inference_accuracy == 0.5
    assert gnu.inferences == 8
    assert gnu.per_task_accuracy == [gnu.own_mask_per_task_accuracy[0], 0.0]
    # Every group of task 1 went to mask 0, so GNs classifies all its images, in order and in the same batches
    # as with its own mask, with a mask identical to mask 1: the same float computation, so the same predictions exactly.
    assert gns.per_task_inference_accuracy == [1.0, 0.0]
    assert gns.per_task_accuracy == gns.own_mask_per_task_accuracy
    assert gnu.average_accuracy == pytest.approx(sum(gnu.per_task_accuracy) / 2)


def test_one_learned_task_is_always_inferred():
    model, tasks = _fixed_model(), _tasks(1, n=7)
    result = evaluate_gn(model, PackedMasks.from_model(model), tasks, GNConfig(images_per_inference=1, objective="superfluous"))
    assert result.task_inference_accuracy == 1.0
    assert result.inferences == 7
    assert result.per_task_accuracy == result.own_mask_per_task_accuracy


def test_max_images_per_task_limits_the_groups():
    model, tasks = _fixed_model(), _tasks(1, n=20)
    result = evaluate_gn(model, PackedMasks.from_model(model), tasks, GNConfig(images_per_inference=1, max_images_per_task=6))
    assert result.inferences == 6


@pytest.mark.parametrize("field, value, match", [
    ("scenario", "GG", "scenario must be one of"),
    ("inference", "linear", "inference must be one of"),
    ("objective", "kl", "objective must be one of"),
    ("images_per_inference", 0, "images_per_inference must be > 0"),
    ("real_outputs", 0, "real_outputs must be > 0"),
])
def test_bad_config_is_an_error(field, value, match):
    with pytest.raises(ValueError, match=match):
        GNConfig(**{field: value})


def test_more_test_sets_than_masks_is_an_error():
    model = _fixed_model()
    with pytest.raises(ValueError, match="only 1 learned masks"):
        evaluate_gn(model, PackedMasks.from_model(model), _tasks(2), GNConfig())


def test_batch_statistics_model_needs_two_images():
    model = _fixed_model("bnnet")
    with pytest.raises(ValueError, match="at least 2 images"):
        evaluate_gn(model, PackedMasks.from_model(model), _tasks(1), GNConfig(images_per_inference=1))


def _run(tmp_path, output_size: int) -> RunDirectory:
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), output_size=output_size, num_tasks=0, width=16),
                       stream=StreamConfig(dataset="permuted-mnist", num_tasks=2), train=TrainConfig(iterations=1))
    return RunDirectory.create(tmp_path / "run", config)


def test_run_with_no_tasks_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="holds no trained task"):
        evaluate_run_gn(_run(tmp_path, 20), GNConfig())


def test_output_size_smaller_than_the_classes_is_an_error(tmp_path):
    run = _run(tmp_path, 10)
    model = run.load_model(num_tasks=0)
    modes.add_task(model, generator=torch.Generator().manual_seed(0))
    run.write_task(model, 0)
    with pytest.raises(ValueError, match="fewer than the 12 classes"):
        evaluate_run_gn(run, GNConfig(real_outputs=12))
    with pytest.raises(ValueError, match="needs extra outputs"):
        evaluate_run_gn(run, GNConfig(real_outputs=10, objective="superfluous"))
    result = evaluate_run_gn(run, GNConfig(real_outputs=10, images_per_inference=50))
    assert result.task_inference_accuracy == 1.0  # one task, one candidate


def test_unfinished_nn_run_is_a_clear_error(tmp_path):
    # an NN run that crashed after writing its masks: results.json says NN but records no mask_of_task yet
    run = _run(tmp_path, 20)
    model = run.load_model(num_tasks=0)
    modes.add_task(model, generator=torch.Generator().manual_seed(0))
    run.write_task(model, 0)
    run.write_results(NNRunResults())  # the marker train_nn_run writes before its first mask file
    with pytest.raises(ValueError, match="NN run that stopped before it finished.*mask_of_task.*new --out"):
        evaluate_run_gn(run, GNConfig(images_per_inference=50))
    # files as older code wrote them (no schema_version), the first damaged
    write_json(run.results_path, {"scenario": "NN", "mask_of_task": ["0", 0], "accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []})
    with pytest.raises(ValueError, match="mask_of_task must be a list of 2 mask ids"):
        evaluate_run_gn(run, GNConfig(images_per_inference=50))
    write_json(run.results_path, {"scenario": "NN", "mask_of_task": [0, 0], "accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []})
    result = evaluate_run_gn(run, GNConfig(images_per_inference=50))
    assert result.task_inference_accuracy == 1.0  # one mask, both tasks assigned to it


def test_for_stream_defaults_real_outputs_to_the_stream_classes():
    stream = build_stream(StreamConfig(dataset="permuted-mnist", num_tasks=2))
    assert GNConfig.for_stream(stream) == GNConfig(real_outputs=stream.num_classes)
    three_classes = SimpleNamespace(num_classes=3)  # for_stream reads only the class count
    assert GNConfig.for_stream(three_classes, scenario="GNs").real_outputs == 3
    config = GNConfig.for_stream(three_classes, scenario="GNs", inference="binary", real_outputs=7, max_images_per_task=3)
    assert config == GNConfig(scenario="GNs", inference="binary", real_outputs=7, max_images_per_task=3)


@pytest.mark.parametrize("option", ["inference", "objective", "images_per_inference", "max_images_per_task", "real_outputs"])
def test_gg_refuses_the_options_of_task_inference(option):
    with pytest.raises(ValueError, match=f"--{option.replace('_', '-')} applies to --scenario GNs or GNu only"):
        check_scenario_options("GG", [option])
    check_scenario_options("GNu", [option])
    check_scenario_options("GG", [])
    with pytest.raises(ValueError, match="scenario must be one of"):
        check_scenario_options("NN", [])
