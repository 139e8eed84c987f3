"""Plot a run's recovery: bit errors, output entropy and Hopfield energy over the descent steps."""
from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window
from matplotlib.figure import Figure  # noqa: E402

from hopfield_masks.io import atomic_write_bytes  # noqa: E402
from supsup_core.hopsupsup.report import RunRecovery  # noqa: E402

__all__ = ["plot_recovery"]


def plot_recovery(report: RunRecovery, path: str | os.PathLike) -> Path:
    """Write a PNG with one line per task in three panels: bit errors, entropy and energy per step.

    The bit-error panel needs the true masks (scored reports); without them it says so.
    """
    figure = Figure(figsize=(13, 3.8), constrained_layout=True)
    axes = figure.subplots(1, 3)
    for row in report.tasks:
        label = f"task {row['task_id']}"
        steps = range(1, len(row["entropy_per_step"]) + 1)
        if row["bit_errors_per_step"] is not None:
            axes[0].plot(steps, row["bit_errors_per_step"], label=label)
        axes[1].plot(steps, row["entropy_per_step"], label=label)
        axes[2].plot(steps, row["energy_per_step"], label=label)
    axes[0].set(title="bit errors of sign(z)", xlabel="step", ylabel="bits wrong")
    if all(row["bit_errors_per_step"] is None for row in report.tasks):
        axes[0].text(0.5, 0.5, "true masks not available", ha="center", va="center", transform=axes[0].transAxes)
    else:
        axes[0].set_yscale("symlog", linthresh=1)
    axes[1].set(title="output entropy H", xlabel="step")
    axes[2].set(title="Hopfield energy E(sign z)", xlabel="step")
    axes[0].legend(fontsize="small")
    figure.suptitle(f"HopSupSup recovery ({report.method}): {report.exact_recoveries} of {len(report.tasks)} masks exact")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return atomic_write_bytes(path, buffer.getvalue())  # like every other file: complete or absent
