"""Plot a run's recovery: bit errors, output entropy and Hopfield energy over the descent steps.

matplotlib is imported when a plot is drawn, not with this module, and the figure is drawn on its own
Agg canvas (no pyplot, no ``matplotlib.use``): importing ``supsup_core.hopsupsup`` loads no plotting
library and never switches the process's backend.
"""
from __future__ import annotations

import os
from pathlib import Path

from hopfield_masks.figures import new_figure, save_png
from supsup_core.hopsupsup.report import RunRecovery

__all__ = ["plot_recovery"]


def plot_recovery(report: RunRecovery, path: str | os.PathLike) -> Path:
    """Write a PNG with one line per task in three panels: bit errors, entropy and energy per step.

    The bit-error panel needs the true masks (scored reports); without them it says so.

    Parameters
    ----------
    report : RunRecovery
        Its tasks' per-step traces are drawn.
    path : where to write the PNG (atomically: complete or absent)

    Returns
    -------
    Path of the written file
    """
    figure = new_figure(figsize=(13, 3.8), constrained_layout=True)
    axes = figure.subplots(1, 3)
    for task in report.tasks:
        label = f"task {task.task_id}"
        steps = range(1, len(task.entropy_per_step) + 1)
        if task.bit_errors_per_step is not None:
            axes[0].plot(steps, task.bit_errors_per_step, label=label)
        axes[1].plot(steps, task.entropy_per_step, label=label)
        axes[2].plot(steps, task.energy_per_step, label=label)
    axes[0].set(title="bit errors of sign(z)", xlabel="step", ylabel="bits wrong")
    scored = any(task.bit_errors_per_step is not None for task in report.tasks)
    if scored:
        axes[0].set_yscale("symlog", linthresh=1)
    else:
        axes[0].text(0.5, 0.5, "true masks not available", ha="center", va="center", transform=axes[0].transAxes)
    axes[1].set(title="output entropy H", xlabel="step")
    axes[2].set(title="Hopfield energy E(sign z)", xlabel="step")
    axes[0 if scored else 1].legend(fontsize="small")  # on a panel that has lines
    figure.suptitle(f"HopSupSup recovery ({report.method}): {report.exact_recoveries} of {len(report.tasks)} masks exact")
    return save_png(figure, path)
