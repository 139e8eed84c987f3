"""PSP's input-interference experiment (Cheung et al. 2019): PermutedMNIST, a new task every ``--iterations``
batches, the first task's accuracy recorded every ``--record-every`` batches as training goes on, for several
hidden widths. Fine-tuning (one network, no context) is the baseline PSP is measured against.

Each (width, method) trains an FC network 784-w-w-10 on the same stream with the library's trainer pieces
(the method's model and reference optimizer settings, one optimizer kept through the run). Prints task 0's
accuracy after the last task per width and method, and writes every curve as JSON and a PNG (one panel
per width).

Usage::

    python benchmarks/psp_input_interference.py --data-dir ../shared/data/mnist --widths 128,512,2048 \\
        --num-tasks 5 --iterations 1000 --out runs/input_interference
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from hopfield_masks.figures import new_figure, save_png
from hopfield_masks.io import write_json
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import train_method_task
from supsup_core.train.methods import get_method, method_train_config
from supsup_core.train.training import (
    evaluate_task,
    make_shared_optimizer,
    task_generator,
)


def task0_curve(stream, method_name: str, width: int, *, iterations: int, record_every: int, seed: int) -> list[tuple[int, float]]:
    """Task 0's test accuracy every ``record_every`` batches while every task of ``stream`` trains in turn."""
    method = get_method(method_name, seed=seed)
    config = ModelConfig(name="fc1024", input_shape=stream.input_shape, num_tasks=0, output_size=stream.num_classes, width=width)
    model = method.build_model(config, torch.Generator().manual_seed(seed))
    train_config = method_train_config(method_name, iterations=iterations)
    shared = make_shared_optimizer(method.shared_parameters(model), train_config)
    curve = []
    for task_id in range(stream.num_tasks):

        def record(batch: int, task_id: int = task_id) -> None:
            if (batch + 1) % record_every == 0:
                curve.append((task_id * iterations + batch + 1, evaluate_task(model, 0, stream)))

        # what supsup train does for a task (the method's own state and, while it says so, the shared weights)
        train_method_task(method, model, task_id, stream, train_config, generator=task_generator(seed, task_id),
                          shared_optimizer=shared, on_batch=record)
        method.finish_task(model, task_id)
    return curve


def plot(curves: dict[int, dict[str, list[tuple[int, float]]]], iterations: int, path: Path) -> None:
    figure = new_figure(figsize=(4 * len(curves), 3.5), constrained_layout=True)
    axes = figure.subplots(1, len(curves), squeeze=False, sharey=True)
    for ax, (width, by_method) in zip(axes[0], curves.items()):
        for name, curve in by_method.items():
            ax.plot([b for b, _ in curve], [a for _, a in curve], label=name, linewidth=1)
        for boundary in range(iterations, max(b for c in by_method.values() for b, _ in c), iterations):
            ax.axvline(boundary, color="grey", linewidth=0.5, linestyle=":")
        ax.set_title(f"width {width}")
        ax.set_xlabel("batches trained")
    axes[0][0].set_ylabel("task 0 accuracy")
    axes[0][0].legend()
    save_png(figure, path)


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--widths", default="128,256,512,1024,2048", show_default=True)
@click.option("--methods", default="finetune,psp-binary,psp-complex,psp-rotation", show_default=True)
@click.option("--num-tasks", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=1000, show_default=True, help="Batches per task.")
@click.option("--record-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def main(data_dir, widths, methods, num_tasks, iterations, record_every, seed, out) -> None:
    if record_every > iterations:
        raise click.BadParameter(f"--record-every {record_every} is more than the {iterations} batches of a task; give at "
                                 "most --iterations.", param_hint="--record-every")
    torch.set_num_threads(1)
    widths = [int(w) for w in widths.split(",")]
    methods = [m.strip() for m in methods.split(",") if m.strip()]
    out.mkdir(parents=True, exist_ok=True)
    stream = build_stream(StreamConfig(dataset="permuted-mnist", num_tasks=num_tasks, seed=seed, data_dir=data_dir))
    click.echo(f"data: {stream.note}; {num_tasks} PermutedMNIST tasks x {iterations} batches of 128, one thread")
    curves: dict[int, dict[str, list[tuple[int, float]]]] = {}
    for width in widths:
        curves[width] = {}
        for name in methods:
            start = time.perf_counter()
            curves[width][name] = task0_curve(stream, name, width, iterations=iterations, record_every=record_every, seed=seed)
            click.echo(f"width {width:>5} {name:>13}: task 0 accuracy after its own training "
                       f"{curves[width][name][iterations // record_every - 1][1]:.4f}, after task {num_tasks - 1} "
                       f"{curves[width][name][-1][1]:.4f} ({time.perf_counter() - start:.0f} s)")
    click.echo("\ntask 0 accuracy after the last task (rows: width):")
    click.echo(f"{'width':>6} " + " ".join(f"{m:>13}" for m in methods))
    for width in widths:
        click.echo(f"{width:>6} " + " ".join(f"{curves[width][m][-1][1]:>13.4f}" for m in methods))
    write_json(out / "curves.json", {"num_tasks": num_tasks, "iterations": iterations, "record_every": record_every,
                                     "seed": seed, "data": stream.note,
                                     "curves": {str(w): {m: [list(p) for p in c] for m, c in v.items()} for w, v in curves.items()}})
    plot(curves, iterations, out / "input_interference.png")
    click.echo(f"curves: {out / 'curves.json'}, plot: {out / 'input_interference.png'}")


if __name__ == "__main__":
    main()
