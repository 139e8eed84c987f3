"""Time one training step of FC 784-1024-1024-10 with supermasks against dense training and the matmul floor.

Usage: ``python benchmarks/bench_train_step.py [--device cpu|cuda] [--repeats 30] [--batch-size 128]``.
All variants are measured in one run, interleaved step by step so that changes in machine load hit them
alike; the median and the minimum over the repeats are reported (on a shared machine the minimum is the
least disturbed step). The floor is the eight bare matmuls a step needs (three forward, three weight
gradients, two input gradients).

The masked steps use the optimizer ``supsup train`` uses (:func:`supsup_core.train.training.make_optimizer`):
on the CPU that is the fused RMSprop of :mod:`supsup_core.nn.fused`, which also writes the next masked
weights. The reference is plain dense training with ``torch.optim.RMSprop``. Two more lines say where
the difference comes from: the masked step with torch's RMSprop, and the dense step with the same fused
kernel (no mask), i.e. the ratio at equal optimizers.
"""
from __future__ import annotations

import statistics
import time

import click
import torch
import torch.nn.functional as F
from torch import nn

from supsup_core.nn import fused, modes
from supsup_core.nn.models import ModelConfig, build_model
from supsup_core.train.training import TrainConfig, make_optimizer
from tools.options import device_option, resolve_device

SIZES = (784, 1024, 1024, 10)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


LR = 1e-4


def _masked_step(kind: str, x, y, device, *, library_optimizer: bool = True):
    model = build_model(ModelConfig(name="fc1024", input_shape=(784,), mask_kind=kind), torch.Generator().manual_seed(0))
    model.to(device)
    modes.set_task(model, 0)
    if library_optimizer:
        opt = make_optimizer(model, 0, TrainConfig(iterations=1, optimizer="rmsprop", lr=LR))
    else:
        opt = torch.optim.RMSprop([layer.task_scores(0) for layer in modes.masked_layers(model).values()], lr=LR, foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _dense_step(x, y, device, *, fused_optimizer: bool = False):
    model = nn.Sequential(
        nn.Linear(784, 1024, bias=False), nn.ReLU(), nn.Linear(1024, 1024, bias=False), nn.ReLU(), nn.Linear(1024, 10, bias=False)
    ).to(device)
    if fused_optimizer:
        opt = fused.FusedRMSprop(model.parameters(), lr=LR)
    else:
        opt = torch.optim.RMSprop(model.parameters(), lr=LR, foreach=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _floor_step(batch: int, device):
    ws = [torch.randn(b, a, device=device) for a, b in zip(SIZES[:-1], SIZES[1:])]
    acts = [torch.randn(batch, a, device=device) for a in SIZES]

    def step():
        for i, w in enumerate(ws):  # forward
            torch.mm(acts[i], w.t())
        for i in reversed(range(len(ws))):  # weight gradients, and input gradients except the first layer's
            torch.mm(acts[i + 1].t(), acts[i])
            if i > 0:
                torch.mm(acts[i + 1], ws[i])

    return step


@click.command()
@device_option
@click.option("--repeats", type=click.IntRange(3), default=30, show_default=True, help="Timed steps per variant.")
@click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True)
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
def main(device: str | None, repeats: int, batch_size: int, threads: int | None) -> None:
    """Print per-step times (median ms) and the ratios masked/dense and masked/floor."""
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 784, generator=gen).to(dev)
    y = torch.randint(0, 10, (batch_size,), generator=gen).to(dev)
    use_fused = dev.type == "cpu" and fused.kernels_available()
    steps = {
        "masked (threshold)": _masked_step("threshold", x, y, dev),
        "masked (top-k 50%)": _masked_step("topk", x, y, dev),
        "dense": _dense_step(x, y, dev),
        "matmul floor": _floor_step(batch_size, dev),
    }
    if use_fused:  # where the gain comes from: the same steps with the other optimizer
        steps["masked, torch RMSprop"] = _masked_step("threshold", x, y, dev, library_optimizer=False)
        steps["dense, fused RMSprop"] = _dense_step(x, y, dev, fused_optimizer=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    for _ in range(repeats):
        for name, step in steps.items():  # interleaved, so drifts in machine load hit all alike
            _sync(dev)
            start = time.perf_counter()
            step()
            _sync(dev)
            times[name].append(time.perf_counter() - start)
    click.echo(f"FC 784-1024-1024-10, batch {batch_size}, RMSprop, device {dev}, threads {torch.get_num_threads()}, "
               f"{repeats} steps each; masked steps use {'the fused' if use_fused else 'torch'} RMSprop, dense torch's")
    click.echo(f"  {'':<20} {'median':>8} {'min':>8}  ms/step")
    stats = {"median": {n: statistics.median(t) * 1e3 for n, t in times.items()}, "min": {n: min(t) * 1e3 for n, t in times.items()}}
    for name in steps:
        click.echo(f"  {name:<20} {stats['median'][name]:8.2f} {stats['min'][name]:8.2f}")
    for stat, ms in stats.items():
        for name in ("masked (threshold)", "masked (top-k 50%)"):
            click.echo(f"  [{stat}] {name}: masked/dense = {ms[name] / ms['dense']:.3f}, masked/floor = {ms[name] / ms['matmul floor']:.3f}")
        click.echo(f"  [{stat}] dense/floor = {ms['dense'] / ms['matmul floor']:.3f}")
        if use_fused:
            click.echo(f"  [{stat}] same optimizer: masked/dense with torch RMSprop = {ms['masked, torch RMSprop'] / ms['dense']:.3f}, "
                       f"with the fused RMSprop = {ms['masked (threshold)'] / ms['dense, fused RMSprop']:.3f}")


if __name__ == "__main__":
    main()
