"""`supsup compare RUN...` through CliRunner: the table, its CSV/JSON/PNG files, refusals and exit codes."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hopfield_masks.io import write_json
from tests.supsup_core.train.test_compare import PNG, make_run, psp_results
from tools.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(tmp_path):
    """Two finished runs of the same stream (different methods) and one that stopped after 2 of 5 rotated tasks."""
    stopped = psp_results(method="supsup", dataset="rotated-mnist", num_tasks=5, accuracy_matrix=[[0.9], [0.8, 0.7]],
                          finished_tasks={0, 1}, tasks=[], mask_bytes_per_task=[200, 200], average_accuracy=0.75,
                          bwt=-0.1, forgetting_max=0.1, accuracy_matrix_full=None, initial_accuracy=None,
                          memory_bytes_per_task=None)
    return (make_run(tmp_path / "psp", psp_results(fwt=0.2)), make_run(tmp_path / "sup", psp_results(method="supsup")),
            make_run(tmp_path / "rot", stopped, dataset="rotated-mnist", num_tasks=5))


def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_the_table_shows_each_runs_results(runs):
    psp, sup, _ = runs
    result = _compare(psp, sup)
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split()[:3] == ["run", "method", "model"] and "FWT" in header
    # psp: 3/3 tasks, avg (0.8+0.6+0.95)/3, BWT -0.15, forgetting 0.15, stored FWT, mean file bytes 310, 256 B in
    # memory, 3 s per trained task
    assert first.split() == ["psp", "psp-rotation", "lenet", "3/3", "0.7833", "-0.1500", "0.1500", "+0.2000", "310", "256",
                             "3.00"]
    assert second.split()[:2] == ["sup", "supsup"] and second.split()[7] == "+0.1750"  # FWT from the full matrix
    assert "warning" not in result.output


def test_outputs_are_written_and_parse_back(runs, tmp_path):
    psp, sup, rot = runs
    out = tmp_path / "out"
    out.mkdir()
    result = _compare(psp, sup, rot, "--csv", out / "t.csv", "--plot", out / "p.png", "--json", out / "c.json")
    assert result.exit_code == 0, result.output
    with open(out / "t.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [line["method"] for line in table] == ["psp-rotation", "supsup", "supsup"]
    assert float(table[0]["fwt"]) == 0.2 and table[2]["fwt"] == ""
    assert int(table[2]["memory_bytes_per_task"]) == 125  # ceil(1000 mask bits / 8): the run predates the field
    data = json.loads((out / "c.json").read_text())
    assert [r["path"] for r in data["runs"]] == [str(psp), str(sup), str(rot)]
    assert data["runs"][2]["accuracy_curve"] == [0.9, 0.75]
    assert data["runs"][0]["average_accuracy"] == pytest.approx((0.8 + 0.6 + 0.95) / 3)
    assert (out / "p.png").read_bytes()[:8] == PNG
    assert sorted(p.name for p in out.iterdir()) == ["c.json", "p.png", "t.csv"]
    # the stopped run on another stream is compared, with the reasons it is not like for like
    assert "warning: the runs differ in datasets" in result.output
    assert "warning: the runs differ in numbers of tasks" in result.output
    assert f"warning: {rot} finished 2 of 5 tasks" in result.output


def test_an_output_in_a_missing_folder_is_refused_before_anything_is_written(runs, tmp_path):
    psp = runs[0]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _compare(psp, "--json", tmp_path / "c.json", "--csv", tmp_path / "missing" / "t.csv")
    assert result.exit_code == 2 and "missing does not exist" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # not even the JSON in an existing folder
    result = _compare(psp, "--csv", tmp_path / "same", "--json", tmp_path / "same")
    assert result.exit_code == 2 and "the same file" in result.output and not (tmp_path / "same").exists()


def test_runs_that_cannot_be_compared_exit_1_without_usage_help(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    fresh = make_run(tmp_path / "fresh")
    nn = make_run(tmp_path / "nn")
    write_json(nn / "results.json", {"scenario": "NN", "accuracy_matrix": [], "mask_bytes_per_task": [], "tasks": []})
    for folder, message in ((tmp_path / "empty", "not a run directory"), (fresh, "train it first"),
                            (nn, "compare takes task-by-task runs")):
        result = _compare(runs[0], folder)
        assert result.exit_code == 1 and message in result.output and "Try" not in result.output, result.output


def test_misuse_exits_2():
    assert _compare().exit_code == 2  # at least one RUN
    result = _compare("no/such/run")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_importing_loads_no_matplotlib():
    # a fresh interpreter (this one may have drawn a plot); the library module first, then the command
    code = ("import sys, supsup_core.train.compare; library = 'matplotlib' in sys.modules; import tools.compare; "
            "print(library, 'matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"], "importing compare imported matplotlib"


def test_plot_writes_one_png_and_refuses_what_compare_refuses(runs, tmp_path):
    result = CliRunner().invoke(main, ["plot", *map(str, runs[:2]), "--out", str(tmp_path / "runs.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = CliRunner().invoke(main, ["plot", str(runs[0]), "--out", str(tmp_path / "nowhere" / "runs.png")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "empty").mkdir()
    refused = CliRunner().invoke(main, ["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")])
    assert refused.exit_code == 1 and "is not a run directory" in refused.output and not (tmp_path / "x.png").exists()
