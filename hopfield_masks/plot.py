"""PNG plots of capacity sweeps next to the classical theory, drawn without pyplot's global state.

matplotlib is imported when a plot is drawn, not with this module: importing ``hopfield_masks`` loads no
plotting library, and the figure is drawn on its own Agg canvas, so no global backend is ever switched.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hopfield_masks.capacity import CapacityResult, theory_loads
from hopfield_masks.figures import new_figure, save_png

__all__ = ["plot_capacity"]

_METRICS = (("fixed_point_fraction", "fixed points", "-"), ("exact_recall_fraction", "exact recall", "--"),
            ("mean_overlap", "mean overlap", ":"))


def plot_capacity(results: CapacityResult | Sequence[CapacityResult], path: str | os.PathLike) -> Path:
    """Plot fixed-point fraction, exact recall and mean overlap against load, with theory lines.

    Parameters
    ----------
    results : CapacityResult or a sequence of them (same dim)
        One set of curves per result.
    path : where to write the PNG (atomically)

    Returns
    -------
    Path of the PNG.
    """
    results = [results] if isinstance(results, CapacityResult) else list(results)
    figure = new_figure(figsize=(7, 4.5), dpi=110)
    axes = figure.add_subplot()
    colours = ["C0", "C1", "C2", "C3", "C4", "C5"]
    for index, result in enumerate(results):
        c = result.config
        loads = [p.load for p in result.points]
        name = f"{c.rule} p={c.density:g} c={c.correlation:g}"
        for key, label, style in _METRICS:
            values = [getattr(p, key) for p in result.points]
            axes.plot(loads, values, style, marker="o", color=colours[index % len(colours)], label=f"{name}: {label}")
    dim = results[0].config.dim
    for (label, load), style in zip(theory_loads(dim).items(), ("-.", (0, (6, 2)), (0, (1, 1)))):
        axes.axvline(load, color="0.35", linestyle=style, linewidth=1.2, label=f"theory {label} = {load * dim:.0f} patterns")
    axes.set_xlabel(f"load K/d  (d = {dim})")
    axes.set_ylabel("fraction")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f"Hopfield capacity, noise {results[0].config.noise:g}")
    axes.legend(fontsize=6, loc="best")
    figure.tight_layout()
    return save_png(figure, path)
