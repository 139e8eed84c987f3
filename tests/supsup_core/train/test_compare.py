"""Comparing finished runs: rows equal the runs' results, CSV/JSON round trips, the plot, every refusal and warning."""
import csv
import json
import math
from pathlib import Path

import pytest

from hopfield_masks.io import write_json
from supsup_core.data.datasets import load_digits
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn.models import ModelConfig
from supsup_core.train.compare import (
    CSV_FIELDS,
    ComparisonRow,
    _labels,
    compare_runs,
    comparison_to_dict,
    comparison_warnings,
    format_table,
    plot_comparison,
    write_csv,
)
from supsup_core.train.continual import train_run
from supsup_core.train.results import RunResults, TaskRecord
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"

# a PSP-like run of 3 tasks: R (lower triangular), the full matrix and the accuracy before any training
R = [[0.9], [0.7, 0.8], [0.8, 0.6, 0.95]]
FULL = [[0.9, 0.3, 0.2], [0.7, 0.8, 0.4], [0.8, 0.6, 0.95]]
B = [0.1, 0.25, 0.1]


def make_run(path: Path, results: RunResults | None = None, *, dataset: str = "permuted-mnist", num_tasks: int = 3,
             iterations: int = 4) -> Path:
    """A run directory of a tiny lenet on 8x8 digits holding ``results`` (none: a run with no finished task)."""
    config = RunConfig(model=ModelConfig(name="lenet", input_shape=(1, 8, 8), num_tasks=0, width=16),
                       stream=StreamConfig(dataset=dataset, num_tasks=num_tasks, seed=1),
                       train=TrainConfig(iterations=iterations, batch_size=64, lr=1e-2), seed=1)
    with RunDirectory.create(path, config) as run:
        if results is not None:
            run.write_results(results)
    return path


def psp_results(**changes) -> RunResults:
    """Results of a method with shared weights (hand-written: only SupSup trains yet); the last task came from a file."""
    fields = dict(method="psp-rotation", dataset="permuted-mnist", model="lenet", num_tasks=3, mask_bits_per_task=1000,
                  accuracy_matrix=R, mask_bytes_per_task=[300, 310, 320],
                  tasks=[TaskRecord(0, True, seconds=2.0), TaskRecord(1, True, seconds=4.0), TaskRecord(2)],
                  finished_tasks={0, 1, 2}, finished=True, average_accuracy=(0.8 + 0.6 + 0.95) / 3, bwt=-0.15,
                  forgetting_max=0.15, forgetting_initial=0.15, accuracy_matrix_full=FULL, initial_accuracy=B,
                  memory_bytes_per_task=256, shared_bytes=4096)
    return RunResults(**{**fields, **changes})


def test_a_row_holds_the_runs_results_and_fwt_from_the_full_matrix(tmp_path):
    path = make_run(tmp_path / "psp", psp_results())
    [row] = compare_runs([path])
    assert (row.path, row.method, row.model, row.dataset) == (str(path), "psp-rotation", "lenet", "permuted-mnist")
    assert (row.num_finished_tasks, row.num_tasks) == (3, 3)
    assert (row.average_accuracy, row.bwt, row.forgetting_max) == ((0.8 + 0.6 + 0.95) / 3, -0.15, 0.15)
    # no stored fwt: computed from the full matrix, R[i-1][i] - b_i for i = 1, 2
    assert row.fwt == pytest.approx(((0.3 - 0.25) + (0.4 - 0.1)) / 2)
    assert row.task_file_bytes == pytest.approx(310.0)
    assert (row.memory_bytes_per_task, row.shared_bytes) == (256, 4096)
    assert row.seconds_per_task == pytest.approx(3.0)  # task 2 was not trained by this run: no time
    assert row.accuracy_curve == pytest.approx((0.9, 0.75, (0.8 + 0.6 + 0.95) / 3))


def test_a_stored_fwt_is_taken_as_it_is(tmp_path):
    [row] = compare_runs([make_run(tmp_path / "psp", psp_results(fwt=0.125))])
    assert row.fwt == 0.125


def test_an_older_supsup_run_gets_its_memory_from_the_mask_bits_and_no_fwt(tmp_path):
    results = psp_results(method="supsup", mask_bits_per_task=1001, memory_bytes_per_task=None, shared_bytes=None,
                          accuracy_matrix_full=None, initial_accuracy=None, tasks=[TaskRecord(t) for t in range(3)])
    [row] = compare_runs([make_run(tmp_path / "old", results)])
    assert row.memory_bytes_per_task == 126  # ceil(1001 / 8)
    assert row.fwt is None and row.shared_bytes is None and row.seconds_per_task is None
    assert "-" in format_table([row]).splitlines()[1].split()  # FWT and seconds shown as "-"


def test_a_trained_supsup_run_compares_to_its_results_json(tmp_path):
    path = make_run(tmp_path / "supsup", num_tasks=2)
    run = RunDirectory.open(path)
    train_run(run, stream=build_stream(run.config.stream, data=load_digits()))
    stored = json.loads((path / "results.json").read_text())
    [row] = compare_runs([path])
    assert (row.method, row.num_finished_tasks, row.num_tasks) == ("supsup", 2, 2)
    assert row.average_accuracy == stored["average_accuracy"]
    assert (row.bwt, row.forgetting_max) == (stored["bwt"], stored["forgetting_max"])
    assert row.task_file_bytes == sum(stored["mask_bytes_per_task"]) / 2
    assert row.memory_bytes_per_task == (stored.get("memory_bytes_per_task") or math.ceil(stored["mask_bits_per_task"] / 8))
    assert row.seconds_per_task == pytest.approx(sum(t["seconds"] for t in stored["tasks"]) / 2)
    assert row.accuracy_curve == tuple(sum(r) / len(r) for r in stored["accuracy_matrix"])
    assert row.fwt is None  # SupSup gives an untrained task no accuracy


def test_csv_parses_back_to_the_rows(tmp_path):
    rows = compare_runs([make_run(tmp_path / "a", psp_results()),
                         make_run(tmp_path / "b", psp_results(shared_bytes=None, tasks=[]))])
    with open(write_csv(rows, tmp_path / "table.csv"), newline="") as handle:
        parsed = list(csv.DictReader(handle))
    assert len(parsed) == 2 and tuple(parsed[0]) == CSV_FIELDS and "accuracy_curve" not in CSV_FIELDS
    for row, line in zip(rows, parsed):
        assert line["path"] == row.path and line["method"] == row.method
        assert float(line["average_accuracy"]) == row.average_accuracy and float(line["fwt"]) == row.fwt
        assert int(line["memory_bytes_per_task"]) == row.memory_bytes_per_task
    assert parsed[1]["shared_bytes"] == "" and parsed[1]["seconds_per_task"] == ""  # None is an empty cell
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "table.csv"]  # atomic: no temp file left


def test_the_json_dict_holds_every_field_the_curve_and_the_warnings(tmp_path):
    rows = compare_runs([make_run(tmp_path / "a", psp_results())])
    data = json.loads(json.dumps(comparison_to_dict(rows)))
    assert list(data) == ["runs", "warnings"] and data["warnings"] == []
    assert tuple(data["runs"][0]) == ComparisonRow._fields
    assert data["runs"][0]["accuracy_curve"] == list(rows[0].accuracy_curve)
    assert data["runs"][0]["fwt"] == rows[0].fwt


def test_the_plot_is_a_png_with_one_labelled_line_per_run(tmp_path):
    rows = compare_runs([make_run(tmp_path / "a", psp_results()), make_run(tmp_path / "b", psp_results()),
                         make_run(tmp_path / "c", psp_results(method="supsup"))])
    path = plot_comparison(rows, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == PNG
    assert _labels(rows) == ["psp-rotation (a)", "psp-rotation (b)", "supsup"]  # the folder only where methods repeat


def test_every_refusal_names_the_run_and_the_fix(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty is not a run directory.*supsup train"):
        compare_runs([tmp_path / "empty"])
    with pytest.raises(ValueError, match="fresh has no finished task.*train it first"):
        compare_runs([make_run(tmp_path / "fresh")])
    nn = make_run(tmp_path / "nn")
    write_json(nn / "results.json", {"scenario": "NN", "accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []})
    with pytest.raises(ValueError, match="nn is an NN run.*compare takes task-by-task runs"):
        compare_runs([nn])
    with pytest.raises(ValueError, match="at least one run"):
        compare_runs([])


def test_a_malformed_matrix_is_refused_with_the_results_file_named(tmp_path):
    path = make_run(tmp_path / "bad", psp_results(accuracy_matrix=[[0.9], [0.7]]))
    with pytest.raises(ValueError, match=r"bad/results.json: row 1 .*rerun `supsup train`"):
        compare_runs([path])


def test_runs_that_differ_are_noted_not_refused(tmp_path):
    like = compare_runs([make_run(tmp_path / "a", psp_results()), make_run(tmp_path / "b", psp_results(method="supsup"))])
    assert comparison_warnings(like) == []
    rows = compare_runs([make_run(tmp_path / "c", psp_results()),
                         make_run(tmp_path / "d", psp_results(dataset="rotated-mnist", num_tasks=5), dataset="rotated-mnist",
                                  num_tasks=5)])
    notes = comparison_warnings(rows)
    assert any("differ in datasets (c: permuted-mnist, d: rotated-mnist)" in n and "not like for like" in n for n in notes)
    assert any("differ in numbers of tasks (c: 3, d: 5)" in n for n in notes)
    assert any("finished 3 of 5 tasks" in n for n in notes)  # d stopped early



def test_a_row_keeps_the_full_matrix_where_the_run_has_one_else_the_lower_triangle(tmp_path):
    full, lower = compare_runs([make_run(tmp_path / "psp", psp_results()), make_run(tmp_path / "sup", psp_results(
        method="supsup", accuracy_matrix_full=None, initial_accuracy=None, fwt=None))])
    assert full.accuracy_matrix == tuple(tuple(r) for r in psp_results().accuracy_matrix_full)
    assert lower.accuracy_matrix == tuple(tuple(r) for r in psp_results().accuracy_matrix)
    assert comparison_to_dict([full])["runs"][0]["accuracy_matrix"] == [list(r) for r in full.accuracy_matrix]


def test_plot_runs_draws_the_curves_and_a_heat_map_per_run(tmp_path):
    from supsup_core.train.compare import plot_runs

    rows = compare_runs([make_run(tmp_path / name, psp_results()) for name in "abcde"])  # two rows of panels
    assert plot_runs(rows, tmp_path / "runs.png").read_bytes()[:8] == PNG
    assert [p.name for p in tmp_path.glob("*.png")] == ["runs.png"]
