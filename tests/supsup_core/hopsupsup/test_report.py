"""recover_run's report: typed rows with the DESIGN §5 JSON keys, and each task's own seeded image order."""
import pytest
import torch

from hopfield_masks.seeding import seeded_generator
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.hopsupsup import report as report_module
from supsup_core.hopsupsup.encode import encode_run
from supsup_core.hopsupsup.recover import RECOVERY_STREAM
from supsup_core.hopsupsup.report import (
    RunRecovery,
    TaskReport,
    read_true_masks,
    recover_run,
)
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig

TASK_KEYS = ["task_id", "bit_errors", "bits", "accuracy", "gg_accuracy", "steps", "attempts", "seconds",
             "entropy_per_step", "energy_per_step", "bit_errors_per_step"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    stream_config = StreamConfig(dataset="split-mnist", num_tasks=2)
    stream = build_stream(stream_config)
    config = RunConfig(model=ModelConfig(name="bnnet", input_shape=stream.input_shape, width=32, num_tasks=0, output_size=10),
                       stream=stream_config,
                       train=TrainConfig(iterations=15, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4))
    run = RunDirectory.create(tmp_path_factory.mktemp("report") / "run", config)
    train_run(run, stream=stream)
    return run, stream


def test_rows_are_typed_and_the_json_keeps_the_design_keys(trained):
    run, stream = trained
    memory = encode_run(run, backend="implicit")
    found = recover_run(run, memory, stream=stream, true_masks=read_true_masks(run, memory.count))
    assert isinstance(found, RunRecovery) and all(isinstance(task, TaskReport) for task in found.tasks)
    assert [task.task_id for task in found.tasks] == [0, 1]
    record = found.to_json()
    assert list(record) == ["method", "num_tasks", "mean_accuracy", "mean_gg_accuracy", "exact_recoveries",
                            "seconds_per_task", "store_bytes", "packed_mask_bytes", "tasks"]
    assert [list(task) for task in record["tasks"]] == [TASK_KEYS, TASK_KEYS]
    assert record["tasks"][1] == found.tasks[1]._asdict()
    assert record["packed_mask_bytes"] == 2 * ((memory.dim + 7) // 8) and record["num_tasks"] == 2
    first = found.tasks[0]
    assert first.bits == memory.dim and len(first.bit_errors_per_step) == len(first.entropy_per_step) == first.steps
    assert record["exact_recoveries"] == sum(task.bit_errors == 0 for task in found.tasks)


def test_without_true_masks_the_results_that_need_them_are_none(trained):
    run, stream = trained
    found = recover_run(run, encode_run(run, backend="implicit"), stream=stream)
    assert found.exact_recoveries is None and found.mean_gg_accuracy is None
    assert all(t.bit_errors is None and t.gg_accuracy is None and t.bit_errors_per_step is None for t in found.tasks)


def test_each_task_orders_its_images_with_its_own_seeded_stream(trained, monkeypatch):
    run, stream = trained
    seeds = []
    real = report_module.recovery_batches

    def recording(data, *, batch_size, generator):
        seeds.append(generator.initial_seed())
        return real(data, batch_size=batch_size, generator=generator)

    monkeypatch.setattr(report_module, "recovery_batches", recording)
    recover_run(run, encode_run(run, backend="implicit"), stream=stream, seed=3)
    assert seeds == [seeded_generator(3, t, RECOVERY_STREAM).initial_seed() for t in (0, 1)]
    assert len(set(seeds)) == 2


def test_the_same_seed_gives_the_same_report(trained):
    run, stream = trained
    memory = encode_run(run, backend="implicit")
    first, second = (recover_run(run, memory, stream=stream, seed=1) for _ in range(2))
    assert [t.accuracy for t in first.tasks] == [t.accuracy for t in second.tasks]
    assert all(torch.equal(torch.tensor(a.entropy_per_step), torch.tensor(b.entropy_per_step))
               for a, b in zip(first.tasks, second.tasks))
