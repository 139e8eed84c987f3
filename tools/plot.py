"""`supsup plot RUN... --out PNG`: accuracy against the number of tasks learned, and each run's accuracy matrix."""
from __future__ import annotations

from pathlib import Path

import click

from supsup_core.train.compare import compare_runs, plot_runs
from tools.options import check_output_parent, user_errors


@click.command()
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), required=True,
              callback=check_output_parent, help="The PNG to write (its folder must exist).")
def plot(run_dirs: tuple[Path, ...], out_path: str) -> None:
    """Draw the runs' average accuracy against the number of tasks learned, one line per RUN, and each RUN's
    accuracy matrix R[i][j] as a heat map, into one PNG."""
    with user_errors():  # a folder that is no run, or a run with nothing trained, is not a misuse of the options
        rows = compare_runs(run_dirs)
        click.echo(f"plot written to {plot_runs(rows, out_path)}")
