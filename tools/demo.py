"""`supsup demo`: the whole HopSupSup pipeline on the built-in digits (or a given MNIST folder)."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks import RULES
from supsup_core.hopsupsup.demo import DemoConfig, run_demo
from supsup_core.hopsupsup.methods import RECOVERY_METHODS
from tools.options import (
    FiniteFloatRange,
    device_option,
    resolve_device,
    seed_option,
    user_errors,
)
from tools.recover import format_recovery


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of MNIST IDX files (default: scikit-learn's built-in 8x8 digits).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"), show_default=True,
              help="New folder for the run, the store, recovery.json and recovery.png.")
@click.option("--num-tasks", type=click.IntRange(1, 5), default=DemoConfig.num_tasks, show_default=True, help="Class-pair tasks.")
@click.option("--epochs", type=FiniteFloatRange(min=0, min_open=True), default=DemoConfig.epochs, show_default=True,
              help="Epochs per task.")
@click.option("--rule", type=click.Choice(sorted(RULES)), default=DemoConfig.rule, show_default=True, help="Memory rule.")
@click.option("--backend", type=click.Choice(["dense", "implicit"]), default=DemoConfig.backend, show_default=True,
              help="Memory backend.")
@click.option("--method", type=click.Choice(list(RECOVERY_METHODS)), default=DemoConfig.method, show_default=True,
              help="Recovery method.")
@click.option("--steps", type=click.IntRange(min=1), default=DemoConfig.steps, show_default=True,
              help="Recovery steps per task.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@seed_option
@device_option
def demo(data_dir, out, num_tasks, epochs, rule, backend, method, steps, progress, seed, device):
    """Train SplitMNIST-style tasks with neuron masks, store the masks in a Hopfield memory, delete them,
    and recover every task's mask from unlabelled test images alone."""
    try:
        config = DemoConfig(data_dir=None if data_dir is None else str(data_dir.resolve()), num_tasks=num_tasks,
                            epochs=epochs, rule=rule, backend=backend, method=method, steps=steps, seed=seed)
    except ValueError as err:  # a combination the option types let through, e.g. --rule storkey --backend implicit
        raise click.UsageError(str(err)) from err
    with user_errors():
        click.echo(f"1/4 training {num_tasks} SplitMNIST-style tasks (BNNet, neuron masks) ...")
        result = run_demo(out, config, device=resolve_device(device), progress=progress)
    click.echo(f"    data: {result.data_note}")
    click.echo(f"    task-given (GG) average accuracy {result.training.metrics['average_accuracy']:.4f}")
    click.echo(f"2/4 encoded the masks into {result.store_path} ({rule}, {backend}) and deleted {result.run_dir / 'masks'}")
    click.echo(f"3/4 recovered every task from the store and unlabelled test images ({method}, at most {steps} steps):")
    click.echo(format_recovery(result.recovery))
    click.echo(f"4/4 results: {result.json_path}; plot: {result.plot_path}")
