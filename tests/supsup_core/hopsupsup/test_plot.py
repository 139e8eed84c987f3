"""The recovery plot: written atomically, and no plotting library is loaded or switched at import."""
import subprocess
import sys
from pathlib import Path

import pytest

from supsup_core.hopsupsup.plot import plot_recovery
from supsup_core.hopsupsup.report import RunRecovery, TaskReport


def _task(task_id, bit_errors_per_step):
    return TaskReport(task_id=task_id, bit_errors=None if bit_errors_per_step is None else bit_errors_per_step[-1],
                      bits=100, accuracy=1.0, gg_accuracy=None if bit_errors_per_step is None else 1.0, steps=2,
                      attempts=1, seconds=0.1, entropy_per_step=[1.0, 0.5], energy_per_step=[-3.0, -4.0],
                      bit_errors_per_step=bit_errors_per_step)


def test_the_recovery_plot_is_written_atomically_and_touches_nothing_beside_it(tmp_path):
    report = RunRecovery("steered", [_task(0, [5, 0])], 1.0, 1.0, 1, 0.1, 100, 10)
    beside = tmp_path / ".recovery.png.tmp"  # the fixed temp name the plot used to write and rename away
    beside.write_text("someone else's file")
    path = plot_recovery(report, tmp_path / "recovery.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert beside.read_text() == "someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".recovery.png.tmp", "recovery.png"]


def test_a_report_without_true_masks_is_plotted_too(tmp_path, recwarn):
    report = RunRecovery("reference", [_task(0, None), _task(1, None)], 1.0, None, None, 0.1, 100, 20)
    assert plot_recovery(report, tmp_path / "blind.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [w for w in recwarn if "legend" in str(w.message)]  # the legend sits on a panel with lines


ROOT = Path(__file__).resolve().parents[3]


def _run(code):
    # a fresh interpreter: this one has imported matplotlib for the tests above
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)


@pytest.mark.parametrize("module", ["supsup_core.hopsupsup", "supsup_core.hopsupsup.plot", "tools.cli"])
def test_importing_loads_no_matplotlib(module):
    result = _run(f"import sys, {module}; print('matplotlib' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", f"importing {module} imported matplotlib"


def test_plotting_leaves_the_process_backend_alone(tmp_path):
    # the plot used to call matplotlib.use("Agg") at import, switching the backend of the whole process
    code = f"""
import matplotlib
matplotlib.use("svg")
from supsup_core.hopsupsup.plot import plot_recovery
from supsup_core.hopsupsup.report import RunRecovery, TaskReport
task = TaskReport(0, 0, 10, 1.0, 1.0, 1, 1, 0.1, [1.0], [-1.0], [0])
plot_recovery(RunRecovery("steered", [task], 1.0, 1.0, 1, 0.1, 10, 2), {str(tmp_path / "r.png")!r})
print(matplotlib.get_backend(), "matplotlib.pyplot" in __import__("sys").modules)
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "False"]
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
