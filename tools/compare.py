"""`supsup compare RUN...`: finished runs side by side: accuracy, transfer, bytes per task and time per task."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks.io import write_json
from supsup_core.train.compare import (
    compare_runs,
    comparison_to_dict,
    comparison_warnings,
    format_table,
    plot_comparison,
    write_csv,
)
from tools.options import json_option, output_option, user_errors


@click.command()
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option("csv", "Write the table to this CSV file, one line per run")
@output_option("plot", "Draw average accuracy against the number of tasks learned, one line per run, into this PNG file")
@json_option
def compare(run_dirs: tuple[Path, ...], csv_path: str | None, plot_path: str | None, json_path: str | None) -> None:
    """Put finished runs side by side: accuracy, BWT, forgetting, FWT, bytes and seconds per task.

    Prints one line per RUN (FWT is "-" for methods that give an untrained task no accuracy, such as
    SupSup) and a warning where the runs differ in dataset or number of tasks, or one stopped early.
    """
    outputs = [Path(p).expanduser().absolute() for p in (csv_path, plot_path, json_path) if p is not None]
    if len(set(outputs)) < len(outputs):
        raise click.UsageError("--csv, --plot and --json name the same file; give each output its own path.")
    with user_errors():  # a folder that is no run, or a run with nothing to compare, is not a misuse of the options
        rows = compare_runs(run_dirs)
    click.echo(format_table(rows))
    for note in comparison_warnings(rows):
        click.echo(f"warning: {note}", err=True)
    if csv_path:
        click.echo(f"table written to {write_csv(rows, csv_path)}")
    if plot_path:
        click.echo(f"plot written to {plot_comparison(rows, plot_path)}")
    if json_path:
        click.echo(f"JSON written to {write_json(json_path, comparison_to_dict(rows))}")
