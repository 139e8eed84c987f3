"""PSP under continuous domain shift (Cheung et al. 2019, RotatingMNIST): the images rotate a little every
step, a full turn every ``--steps-per-turn`` steps; the network switches context on a schedule.

Three schedules, each trained from the same initial weights on the same batches:

- ``psp``: a new context every ``--switch-every`` steps (100), the contexts of the first turn reused after
  (10 contexts for 1000 steps per turn);
- ``single``: one context throughout (a plain network, the baseline);
- ``every-step``: a new context at every step of the first turn, reused after (1000 contexts: the
  ablation with a model per step).

Every ``--eval-every`` steps the accuracy on ``--test-images`` test images rotated by the current angle,
with the current context, is recorded. Prints the mean accuracy over the last turn per schedule, and writes
the curves as JSON and as a PNG.

Usage::

    python benchmarks/psp_domain_shift.py --data-dir ../shared/data/mnist --turns 3 --out runs/domain_shift
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import click
import torch
import torch.nn.functional as F

from hopfield_masks.figures import new_figure, save_png
from hopfield_masks.io import write_json
from hopfield_masks.seeding import seeded_generator
from supsup_core.data.datasets import load_data
from supsup_core.data.rotating import RotatingStream
from supsup_core.nn import modes
from supsup_core.nn.models import ModelConfig
from supsup_core.train.methods import get_method
from supsup_core.train.training import TrainConfig, accuracy, make_shared_optimizer


def schedules(switch_every: int, steps_per_turn: int) -> dict[str, Callable[[int], int]]:
    """Schedule name -> the context index used at step t."""
    per_turn = max(1, steps_per_turn // switch_every)
    return {
        "psp": lambda t: (t // switch_every) % per_turn,
        "single": lambda t: 0,
        "every-step": lambda t: t % steps_per_turn,
    }


def run_schedule(stream: RotatingStream, context_of: Callable[[int], int], *, kind: str, width: int, steps: int,
                 eval_every: int, test_images: int, seed: int, lr: float) -> list[tuple[int, float]]:
    method = get_method(f"psp-{kind}", seed=seed)
    config = ModelConfig(name="fc1024", input_shape=stream.input_shape, num_tasks=0, output_size=stream.num_classes, width=width)
    model = method.build_model(config, torch.Generator().manual_seed(seed))
    optimizer = make_shared_optimizer(method.shared_parameters(model), TrainConfig(optimizer="rmsprop", lr=lr))
    generator = seeded_generator(seed, 0)  # the same batches for every schedule
    curve = []
    for step in range(steps):
        context = context_of(step)
        while modes.num_tasks(model) <= context:  # contexts are drawn from (seed, index, layer) when first used
            modes.add_task(model)
        modes.set_task(model, context)
        model.train()
        x, y = stream.train_batch(step, batch_size=128, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if (step + 1) % eval_every == 0:
            curve.append((step + 1, accuracy(model, stream.test_batch(step, size=test_images), num_classes=stream.num_classes)))
    return curve


def plot(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    figure = new_figure(figsize=(8, 4), constrained_layout=True)
    ax = figure.subplots()
    for name, curve in curves.items():
        ax.plot([s for s, _ in curve], [a for _, a in curve], label=name, linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy at the current angle")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    save_png(figure, path)


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--kind", type=click.Choice(["binary", "complex", "rotation"]), default="binary", show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=512, show_default=True, help="Hidden width (two layers).")
@click.option("--turns", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--steps-per-turn", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--switch-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--test-images", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def main(data_dir, kind, width, turns, steps_per_turn, switch_every, eval_every, test_images, lr, seed, out) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(data_dir)
    stream = RotatingStream(data, steps_per_turn=steps_per_turn)
    steps = turns * steps_per_turn
    click.echo(f"data: {data.note}; psp-{kind}, width {width}, {steps} steps, a turn every {steps_per_turn}, one thread")
    curves = {}
    for name, context_of in schedules(switch_every, steps_per_turn).items():
        start = time.perf_counter()
        curves[name] = run_schedule(stream, context_of, kind=kind, width=width, steps=steps, eval_every=eval_every,
                                    test_images=test_images, seed=seed, lr=lr)
        last_turn = [a for s, a in curves[name] if s > steps - steps_per_turn]
        contexts = len({context_of(t) for t in range(steps)})
        click.echo(f"{name:>10}: {contexts:>4} context(s); mean accuracy over the last turn {sum(last_turn) / len(last_turn):.4f}; "
                   f"first turn {sum(a for s, a in curves[name] if s <= steps_per_turn) / max(1, sum(1 for s, _ in curves[name] if s <= steps_per_turn)):.4f} "
                   f"({time.perf_counter() - start:.0f} s)")
    write_json(out / "curves.json", {"kind": kind, "width": width, "steps": steps, "steps_per_turn": steps_per_turn,
                                     "switch_every": switch_every, "seed": seed, "data": data.note,
                                     "curves": {k: [list(p) for p in v] for k, v in curves.items()}})
    plot(curves, out / "domain_shift.png", f"PSP ({kind}) on RotatingMNIST: a turn every {steps_per_turn} steps")
    click.echo(f"curves: {out / 'curves.json'}, plot: {out / 'domain_shift.png'}")


if __name__ == "__main__":
    main()
