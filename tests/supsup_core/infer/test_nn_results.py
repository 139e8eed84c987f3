"""Tests of an NN run's results record: its JSON keys, round trips, older files and damaged ones."""
import json

import pytest

from supsup_core.infer.nn_results import NNCheck, NNRunResults
from supsup_core.train.results import RESULTS_SCHEMA_VERSION

# results.json's keys before the record was typed, plus schema_version and finished
KEYS = {"scenario", "dataset", "model", "data_note", "masks_allocated", "true_tasks", "mask_of_task", "evaluation",
        "per_task_accuracy", "average_accuracy", "task_inference_accuracy", "own_mask_per_task_accuracy",
        "own_mask_average_accuracy", "nn_config", "seconds", "checks", "accuracy_matrix", "mask_bytes_per_task", "tasks",
        "schema_version", "finished"}


def _finished() -> NNRunResults:
    checks = [NNCheck(0, 0, None, None, 0, 0, True), NNCheck(4, 1, 0.2, 0.225, 5, 1, True)]
    return NNRunResults(finished=True, dataset="permuted-mnist", model="lenet", data_note="8x8 digits", masks_allocated=2,
                        true_tasks=2, mask_of_task=[0, 1], evaluation={"scenario": "GNs"}, per_task_accuracy=[0.5, 0.75],
                        average_accuracy=0.625, task_inference_accuracy=1.0, own_mask_per_task_accuracy=[0.5, 0.75],
                        own_mask_average_accuracy=0.625, nn_config={"check_every": 4}, seconds=1.5, checks=checks,
                        mask_bytes_per_task=[100, 100])


def test_the_json_keys_and_the_checks_as_objects():
    data = _finished().to_dict()
    assert set(data) == KEYS
    assert (data["scenario"], data["schema_version"]) == ("NN", RESULTS_SCHEMA_VERSION)
    assert data["checks"][1] == {"batch": 4, "true_task": 1, "max_nu": 0.2, "threshold": 0.225, "num_superposed": 5,
                                 "mask": 1, "allocated": True}
    assert (data["accuracy_matrix"], data["tasks"]) == ([], [])  # an NN run has no task ids for GG bookkeeping


@pytest.mark.parametrize("record", [_finished(), NNRunResults()], ids=["finished", "marker"])
def test_round_trip_through_json(record):
    assert NNRunResults.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_an_older_file_without_schema_version_reads():
    old = {key: value for key, value in _finished().to_dict().items() if key not in ("schema_version", "finished")}
    assert NNRunResults.from_dict(old) == _finished()  # a file with mask_of_task is a finished run
    marker = {"scenario": "NN", "finished": False, "accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []}
    assert NNRunResults.from_dict(marker) == NNRunResults()


@pytest.mark.parametrize("change, match", [
    ({"scenario": "GG"}, "of scenario 'GG', not an NN run"),
    ({"schema_version": 99}, "schema_version 99"),
    ({"mask_of_task": [0, True]}, "mask_of_task must be a list of 2 mask ids, one per task of the stream"),
    ({"mask_of_task": [0]}, "mask_of_task must be a list of 2 mask ids"),
    ({"mask_of_task": "0 1"}, "mask_of_task must be a list"),
    ({"checks": [{"batch": 0}]}, "checks must be a list of objects with the keys"),
    ({"mask_bytes_per_task": 3}, "mask_bytes_per_task must be a list"),
])
def test_damaged_fields_are_named(change, match):
    with pytest.raises(ValueError, match=match):
        NNRunResults.from_dict({**_finished().to_dict(), **change})


def test_mask_of_task_must_cover_the_stream_given():
    data = _finished().to_dict()
    with pytest.raises(ValueError, match="a list of 3 mask ids"):
        NNRunResults.from_dict(data, num_tasks=3)
    with pytest.raises(ValueError, match="is empty"):
        NNRunResults.from_dict({})
    with pytest.raises(ValueError, match="holds list"):
        NNRunResults.from_dict([])
