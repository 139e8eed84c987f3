"""`supsup evaluate RUN`: test accuracy of a trained run's tasks in a continual-learning scenario."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks.io import write_json
from supsup_core.evaluation import evaluate_gg
from supsup_core.runs import RunDirectory
from tools.options import device_option, json_option, resolve_device

SCENARIOS = ("GG", "GNs", "GNu")


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenario", type=click.Choice(SCENARIOS), default="GG", show_default=True,
              help="GG: task id given at test time; GNs/GNu: task id inferred.")
@device_option
@json_option
def evaluate(run_dir: Path, scenario: str, device: str | None, json_path: str | None) -> None:
    """Evaluate every stored task of RUN and print per-task and average accuracy."""
    if scenario != "GG":
        raise click.UsageError(f"scenario {scenario} is not available yet; only GG is implemented. Use --scenario GG.")
    dev = resolve_device(device)
    try:
        run = RunDirectory.open(run_dir)
        result = evaluate_gg(run, device=dev)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    for task_id, accuracy in enumerate(result.per_task_accuracy):
        click.echo(f"task {task_id}: {accuracy:.4f}")
    click.echo(f"average accuracy ({scenario}): {result.average_accuracy:.4f}")
    if json_path:
        write_json(json_path, {"scenario": scenario, "per_task_accuracy": result.per_task_accuracy,
                               "average_accuracy": result.average_accuracy})
