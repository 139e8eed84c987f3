"""Train every method on the same stream, print the comparison table, task 0's accuracy as tasks arrive, the
bytes each method keeps per task, and each method's training step against a plain dense step.

Usage::

    python benchmarks/bench_baselines.py --data-dir ../shared/data/mnist --model lenet --num-tasks 10 \\
        --iterations 1000 --out runs/baselines [--methods supsup,psp-binary,...] [--plot PNG] [--csv CSV]

Each method trains into ``OUT/<method>`` through the library's ``train_run`` (what ``supsup train
--method M`` runs, with the method's reference optimizer settings), so a rerun resumes where it stopped.
The step-time ratios are measured in one run, interleaved step by step (median of ``--repeats``), against
a plain dense network of the same sizes trained with torch's RMSprop; they include each method's own
optimizer (SupSup and PSP with float32 weights use the fused CPU RMSprop).
"""
from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import click
import torch
import torch.nn.functional as F

from supsup_core.baselines.bounds import plain_linear
from supsup_core.baselines.fc import build_fc_stack
from supsup_core.data.datasets import load_data
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig
from supsup_core.train.compare import (
    compare_runs,
    comparison_warnings,
    format_table,
    plot_comparison,
    write_csv,
)
from supsup_core.train.continual import train_run
from supsup_core.train.methods import METHODS, get_method, method_train_config
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import (
    make_optimizer,
    make_shared_optimizer,
    task_generator,
)

DEFAULT_METHODS = "finetune,psp-binary,psp-complex,psp-rotation,batchensemble,supsup,separate"


def _step_of(method_name: str, model_config: ModelConfig, train_config, x, y):
    """One training step of task 0 of ``method_name`` (task state and shared weights as the trainer trains them)."""
    method = get_method(method_name, seed=0)
    model = method.build_model(model_config, torch.Generator().manual_seed(0))
    method.start_task(model, generator=task_generator(0, 0))
    params = method.task_parameters(model, 0)
    optimizers = [make_optimizer(model, 0, train_config, params)] if params else []
    shared = make_shared_optimizer(method.shared_parameters(model), train_config) if method.trains_shared(0) else None
    optimizers += [shared] if shared is not None else []
    modes.set_task(model, 0)
    model.train()

    def step():
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for o in optimizers:
            o.step()

    return step


def _dense_step(model_config: ModelConfig, x, y):
    model = build_fc_stack(model_config, lambda a, b, i, last: plain_linear(a, b, torch.Generator().manual_seed(i)))
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def step_ratios(methods: list[str], model_config: ModelConfig, x, y, repeats: int) -> dict[str, float]:
    """Median step time of each method over the dense step's, measured interleaved."""
    steps = {"dense": _dense_step(model_config, x, y)}
    steps.update({m: _step_of(m, model_config, method_train_config(m), x, y) for m in methods})
    times = {name: [] for name in steps}
    for name, step in steps.items():  # warm-up (and the fused kernel's first build)
        step()
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    dense = statistics.median(times["dense"])
    return {name: statistics.median(t) / dense for name, t in times.items() if name != "dense"}


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--dataset", default="permuted-mnist", show_default=True)
@click.option("--model", "model_name", type=click.Choice(["lenet", "fc1024"]), default="lenet", show_default=True)
@click.option("--num-tasks", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--methods", default=DEFAULT_METHODS, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=30, show_default=True, help="Timed steps per method.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(data_dir, dataset, model_name, num_tasks, iterations, methods, seed, repeats, out, plot, csv_path) -> None:
    methods = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise click.BadParameter(f"unknown methods {unknown}; choose from {list(METHODS)}", param_hint="--methods")
    torch.set_num_threads(1)
    # an absolute data folder in the runs' configs, as `supsup train` records it, so the runs evaluate from anywhere
    stream_config = StreamConfig(dataset=dataset, num_tasks=num_tasks, seed=seed,
                                 data_dir=str(Path(data_dir).resolve()) if data_dir is not None else None)
    data = load_data(stream_config.data_dir, test_fraction=stream_config.test_fraction)
    stream = build_stream(stream_config, data=data)
    click.echo(f"data: {stream.note}; {num_tasks} tasks x {iterations} batches of 128, model {model_name}, one thread")
    model_config = ModelConfig(name=model_name, input_shape=stream.input_shape, num_tasks=0, output_size=stream.num_classes)
    out.mkdir(parents=True, exist_ok=True)
    for name in methods:
        config = RunConfig(model=model_config, stream=stream_config, train=method_train_config(name, iterations=iterations),
                           seed=seed, method=name)
        start = time.perf_counter()
        with RunDirectory.create(out / name, config) as run:
            train_run(run, stream=stream)
        click.echo(f"{name}: trained in {time.perf_counter() - start:.0f} s ({config.train.optimizer}, lr {config.train.lr}"
                   + (f", shared lr {config.train.shared_lr}" if config.train.shared_lr else "") + ")")
    rows = compare_runs([out / name for name in methods])
    click.echo("\ntask 0's accuracy after each task (R[i][0]):")
    for name in methods:
        matrix = RunDirectory.open(out / name).read_results().accuracy_matrix
        click.echo(f"  {name:>14}: " + " ".join(f"{row[0]:.3f}" for row in matrix))
    click.echo("\n" + format_table(rows))
    for warning in comparison_warnings(rows):
        click.echo(f"warning: {warning}")
    d = RunDirectory.open(out / "supsup").read_results().mask_bits_per_task if "supsup" in methods else None
    click.echo("\nbytes per task (task file / in memory)" + (f"; SupSup's d/8 = {math.ceil(d / 8)} for d = {d}" if d else ""))
    for row in rows:
        click.echo(f"  {row.method:>14}: {row.task_file_bytes:>10.0f} / {row.memory_bytes_per_task:>10} "
                   f"(shared: {row.shared_bytes})")
    x = stream.test_set(0).x[:128]
    y = stream.test_set(0).y[:128]
    ratios = step_ratios(methods, model_config, x, y, repeats)
    click.echo(f"\ntraining step / plain dense step (batch 128, median of {repeats}, interleaved, one thread):")
    for name, ratio in ratios.items():
        click.echo(f"  {name:>14}: {ratio:.2f}x")
    if csv_path is not None:
        write_csv(rows, csv_path)
    if plot is not None:
        plot_comparison(rows, plot)
        click.echo(f"plot: {plot}")


if __name__ == "__main__":
    main()
