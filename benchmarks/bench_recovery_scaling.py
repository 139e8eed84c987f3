"""HopSupSup recovery as tasks grow: the reference method and rule against the steered method, one run.

Trains (or resumes) one PermutedMNIST run with BNNet neuron masks, then for each K encodes tasks
0..K-1 and recovers every one of them from unlabelled test batches with

- the reference recovery (annealed descent, DESIGN §2 defaults) on the reference Storkey-variant memory;
- the steered recovery (entropy gradient through the memory, then recall) on a pseudo-inverse memory.

It prints exact recoveries, mean accuracy with the recovered masks against the task-given (GG) accuracy,
seconds per recovered mask and the memory's bytes next to the packed masks, and writes the rows as JSON.

Usage: ``python benchmarks/bench_recovery_scaling.py [--data-dir ../shared/data/mnist] [--tasks 5,10,20]
[--epochs 1] [--run DIR] [--json PATH]``. The real MNIST folder holds one split: the run divides it
8000/2000 deterministically and says so.
"""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks.io import write_json
from hopfield_masks.recovery import RecoveryConfig, SteerConfig
from supsup_core.data.streams import StreamConfig, build_stream
from supsup_core.hopsupsup.encode import encode_run
from supsup_core.hopsupsup.report import read_true_masks, recover_run
from supsup_core.nn.models import ModelConfig
from supsup_core.train.continual import train_run
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import TrainConfig
from tools.options import device_option, resolve_device

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
METHODS = (  # (label, rule, backend, method, config)
    ("reference", "storkey_reference", "dense", "reference", RecoveryConfig()),
    ("steered", "pseudoinverse", "implicit", "steered", SteerConfig()),
)


@click.command()
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=SHARED_MNIST, show_default=True)
@click.option("--tasks", default="5,10,20", show_default=True, help="Comma-separated K values.")
@click.option("--epochs", type=float, default=1.0, show_default=True, help="Training epochs per task (reference: 1).")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/bench_permuted_bnnet"),
              show_default=True, help="Run directory (resumed if it exists).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
def main(data_dir, tasks, epochs, run_dir, json_path, seed, device):
    ks = sorted({int(k) for k in tasks.split(",")})
    dev = resolve_device(device)
    stream_config = StreamConfig(dataset="permuted-mnist", num_tasks=max(ks), seed=seed, data_dir=str(data_dir.resolve()))
    stream = build_stream(stream_config, dev)
    model = ModelConfig(name="bnnet", input_shape=stream.input_shape, num_tasks=0, output_size=10)
    train = TrainConfig(epochs=epochs, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
    run = RunDirectory.create(run_dir, RunConfig(model=model, stream=stream_config, train=train, seed=seed))
    click.echo(f"data: {stream.note}")
    click.echo(f"training {max(ks)} PermutedMNIST tasks with BNNet neuron masks into {run_dir} (resumes if present) ...")
    train_run(run, device=dev, stream=stream, progress=True)
    rows = []
    click.echo(f"{'K':>3}  {'method':<9}  {'rule':<17}  {'exact':>7}  {'accuracy':>8}  {'GG':>6}  {'s/mask':>6}  {'memory B':>11}  {'packed B':>8}")
    for k in ks:
        truth = read_true_masks(run, k)
        for label, rule, backend, method, config in METHODS:
            memory = encode_run(run, rule=rule, backend=backend, device=dev, num_tasks=k)
            report = recover_run(run, memory, method=method, config=config, seed=seed, device=dev, stream=stream, true_masks=truth)
            row = {"K": k, "method": label, "rule": rule, "backend": backend, "exact_recoveries": report.exact_recoveries,
                   "mean_accuracy": report.mean_accuracy, "mean_gg_accuracy": report.mean_gg_accuracy,
                   "seconds_per_mask": report.seconds_per_task, "memory_bytes": report.store_bytes,
                   "packed_mask_bytes": report.packed_mask_bytes, "bit_errors": [t.bit_errors for t in report.tasks],
                   "attempts": [t.attempts for t in report.tasks]}
            rows.append(row)
            click.echo(f"{k:>3}  {label:<9}  {rule:<17}  {report.exact_recoveries:>3}/{k:<3}  {report.mean_accuracy:>8.4f}  "
                       f"{report.mean_gg_accuracy:>6.4f}  {report.seconds_per_task:>6.2f}  {report.store_bytes:>11,}  "
                       f"{report.packed_mask_bytes:>8,}")
    if json_path:
        write_json(json_path, {"data": stream.note, "epochs": epochs, "seed": seed, "rows": rows})
        click.echo(f"results: {json_path}")


if __name__ == "__main__":
    main()
