"""Figures drawn on their own Agg canvas and written as PNG atomically, without pyplot's global state.

matplotlib is imported when a figure is made, not with this module: importing a package that plots loads no
plotting library, and no process-wide backend is ever switched.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hopfield_masks.io import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["new_figure", "save_png"]


def new_figure(**options: Any) -> "Figure":
    """A matplotlib ``Figure`` (``options`` as ``Figure`` takes them: figsize, dpi, constrained_layout...) with an
    Agg canvas attached, so ``savefig`` draws through it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: "Figure", path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (complete or absent, like every other file); returns the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())
