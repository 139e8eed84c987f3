"""results.json as a typed record: round trip, the finished set, older files, malformed ones."""
import pytest

from supsup_core.train.results import RESULTS_SCHEMA_VERSION, RunResults, TaskRecord
from supsup_core.train.training import DEFAULT_ITERATIONS, TrainConfig


def _results() -> RunResults:
    return RunResults(dataset="split-mnist", model="bnnet", num_tasks=3, accuracy_matrix=[[0.9], [0.9, 0.8]],
                      mask_bytes_per_task=[100, 100], tasks=[TaskRecord(0, True, 5, 0.1, 1.0, "torch-sgd"), TaskRecord(1)],
                      finished_tasks={1, 0}, average_accuracy=0.85)


def test_results_round_trip_with_a_schema_version_and_the_finished_tasks_as_a_sorted_list():
    data = _results().to_dict()
    assert data["schema_version"] == RESULTS_SCHEMA_VERSION and data["finished_tasks"] == [0, 1]
    assert data["tasks"][1] == {"task_id": 1, "trained": False, "iterations": None, "final_loss": None, "seconds": None,
                                "optimizer": None}
    assert RunResults.from_dict(data) == _results()


def test_a_finished_set_may_have_gaps_as_an_out_of_order_trainer_leaves_it():
    data = {**_results().to_dict(), "finished_tasks": [0, 2]}
    assert RunResults.from_dict(data).finished_tasks == {0, 2}


def test_results_written_before_the_schema_take_their_finished_tasks_from_the_rows():
    data = _results().to_dict()
    del data["schema_version"], data["finished_tasks"]
    data["tasks"].append({"task_id": 2, "trained": True})  # a record without a row is not finished
    assert RunResults.from_dict(data).finished_tasks == {0, 1}


@pytest.mark.parametrize("change, message", [
    ({"schema_version": 9}, "schema_version 9; this code reads 1"),
    ({"accuracy_matrix": {}}, "'accuracy_matrix' must be a list; got dict"),
    ({"tasks": [{"task_id": "0"}]}, "integer task_id"),
    ({"finished_tasks": [-1]}, "'finished_tasks' must be a list of task ids"),
    ({"scenario": "NN"}, "scenario 'NN', not a task-by-task"),
])
def test_malformed_results_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        RunResults.from_dict({**_results().to_dict(), **change}, fix="Delete it.")


def test_a_train_config_without_iterations_or_epochs_trains_the_default_batches():
    assert TrainConfig().iterations == DEFAULT_ITERATIONS and TrainConfig(epochs=1).iterations is None
