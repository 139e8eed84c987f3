"""`supsup recover`: get each task's masks back from the store and unlabelled test images, and score them."""
from __future__ import annotations

import warnings
from pathlib import Path

import click

from hopfield_masks import load_memory
from hopfield_masks.io import write_csv, write_json
from hopfield_masks.recovery import SCHEDULES, RecoveryConfig, SteerConfig
from supsup_core.hopsupsup.methods import RECOVERY_METHODS, recovery_config
from supsup_core.hopsupsup.report import (
    RunRecovery,
    TaskReport,
    read_true_masks,
    recover_run,
)
from supsup_core.train.runs import RunDirectory
from tools.options import (
    FiniteFloatRange,
    device_option,
    json_option,
    output_option,
    resolve_device,
    seed_option,
    user_errors,
)


def format_recovery(report: RunRecovery) -> str:
    """A plain-text table of a run's recovery (one row per task, then totals)."""
    lines = [f"{'task':>4}  {'bit errors':>10}  {'accuracy':>8}  {'GG acc.':>8}  {'steps':>5}  {'seconds':>7}"]
    for task in report.tasks:
        errors = "n/a" if task.bit_errors is None else f"{task.bit_errors}/{task.bits}"
        gg = "n/a" if task.gg_accuracy is None else f"{task.gg_accuracy:.4f}"
        lines.append(f"{task.task_id:>4}  {errors:>10}  {task.accuracy:>8.4f}  {gg:>8}  {task.steps:>5}  {task.seconds:>7.2f}")
    exact = "n/a (true masks not available)" if report.exact_recoveries is None else f"{report.exact_recoveries}/{len(report.tasks)}"
    gg = "n/a" if report.mean_gg_accuracy is None else f"{report.mean_gg_accuracy:.4f}"
    lines.append(f"method {report.method}: exact recoveries {exact}; mean accuracy {report.mean_accuracy:.4f} "
                 f"(task given: {gg}); {report.seconds_per_task:.2f} s per task")
    lines.append(f"memory: {report.store_bytes:,} bytes; the packed masks themselves: {report.packed_mask_bytes:,} bytes")
    return "\n".join(lines)


METHOD_HELP = "; ".join(f"{name}: {entry.summary}" for name, entry in RECOVERY_METHODS.items())


def _none_for_zero(ctx: click.Context, param: click.Parameter, value: int) -> int | None:
    return value or None  # --patience 0 spells SteerConfig(patience=None): never stop early


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--store", "store_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Store file written by `supsup encode`.")
@click.option("--method", type=click.Choice(list(RECOVERY_METHODS)), default=next(iter(RECOVERY_METHODS)),
              show_default=True,
              help=f"{METHOD_HELP}. Each method's own options are marked reference: or steered: and refused with the other.")
@click.option("--steps", type=click.IntRange(min=1), default=SteerConfig.steps, show_default=True,
              help="Descent steps T (one batch each).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Unlabelled images per step.")
@click.option("--gamma", type=FiniteFloatRange(min=0), default=RecoveryConfig.gamma, show_default=True,
              help="reference: energy weight γ.")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=RecoveryConfig.lr, show_default=True,
              help="reference: SGD lr.")
@click.option("--momentum", type=FiniteFloatRange(0, 1), default=RecoveryConfig.momentum, show_default=True,
              help="reference: SGD momentum.")
@click.option("--weight-decay", type=FiniteFloatRange(min=0), default=RecoveryConfig.weight_decay, show_default=True,
              help="reference: SGD weight decay.")
@click.option("--schedule", type=click.Choice(sorted(SCHEDULES)), default=RecoveryConfig.schedule, show_default=True,
              help="reference: how the energy weight t/T ramps up.")
@click.option("--step-size", type=FiniteFloatRange(min=0, min_open=True), default=SteerConfig.step_size,
              show_default=True, help="steered: RMS change of z (whose sign is the recovered mask) per step.")
@click.option("--recall-steps", type=click.IntRange(min=1), default=SteerConfig.recall_steps, show_default=True,
              help="steered: most Hopfield steps of the final recall.")
@click.option("--patience", type=click.IntRange(min=0), default=SteerConfig.patience, show_default=True,
              callback=_none_for_zero,
              help="steered: stop once the sign of z has not changed for this many steps (0: run all --steps).")
@click.option("--retries", type=click.IntRange(min=0), default=SteerConfig.retries, show_default=True,
              help="steered, implicit stores: descend again with more data per step when the recall ends on no stored mask.")
@click.option("--force", is_flag=True, default=False,
              help="Recover even if the store records another run's weights (it warns instead of refusing).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@seed_option
@device_option
@json_option
@output_option("csv", "Write one line per task (bit errors, accuracy, steps, seconds) to this CSV file")
@click.pass_context
def recover(ctx, run_dir, store_path, method, steps, batch_size, gamma, lr, momentum, weight_decay, schedule, step_size,
            recall_steps, patience, retries, force, progress, seed, device, json_path, csv_path):
    """Recover every task's masks of RUN_DIR from the store alone (no task ids, no labels), then score them."""
    # the method's knobs: only those given are passed, so another method's option is refused, not ignored
    knobs = {"steps": steps, "gamma": gamma, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
             "schedule": schedule, "step_size": step_size, "recall_steps": recall_steps, "patience": patience,
             "retries": retries}
    given = {name: value for name, value in knobs.items()
             if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT}
    try:
        config = recovery_config(method, **given)
    except ValueError as err:  # values the option types let through, or another method's option: a misuse
        raise click.UsageError(str(err)) from err
    with user_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        run = RunDirectory.open(run_dir)
        target = resolve_device(device)
        memory = load_memory(store_path, device=target)
        report = recover_run(run, memory, method=method, config=config, batch_size=batch_size, seed=seed, device=target,
                             true_masks=read_true_masks(run, memory.count), progress=progress, force=force)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(format_recovery(report))
    if json_path:
        write_json(json_path, report.to_json())
        click.echo(f"results: {json_path}")
    if csv_path:  # the per-task numbers; the per-step traces stay in the JSON
        columns = [name for name in TaskReport._fields if not name.endswith("_per_step")]
        rows = [[getattr(task, name) for name in columns] for task in report.tasks]
        click.echo(f"CSV written to {write_csv(csv_path, columns, rows)}")
