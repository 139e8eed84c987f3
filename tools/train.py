"""`supsup train`: learn one supermask per task over fixed random weights into a resumable run directory."""
from __future__ import annotations

from pathlib import Path

import click

from supsup_core.continual import check_compatible, train_run
from supsup_core.models import MODELS, ModelConfig
from supsup_core.runs import RunConfig, RunDirectory
from supsup_core.streams import STREAMS, StreamConfig, build_stream
from supsup_core.supermask import MASK_KINDS, SCORE_INITS
from supsup_core.training import OPTIMIZERS, TrainConfig
from tools.options import device_option, resolve_device, seed_option

DEFAULT_ITERATIONS = 1000


def format_matrix(matrix: list[list[float]]) -> str:
    """The accuracy matrix as aligned text, one row per trained task."""
    return "\n".join(f"  after task {i:>3}: " + " ".join(f"{a:.4f}" for a in row) for i, row in enumerate(matrix))


@click.command()
@click.option("--dataset", type=click.Choice(sorted(STREAMS)), required=True, help="Task stream.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of MNIST IDX files (flat or MNIST/raw/); default: scikit-learn's 8x8 digits.")
@click.option("--model", "model_name", type=click.Choice(sorted(MODELS)), required=True, help="Architecture.")
@click.option("--num-tasks", type=click.IntRange(min=1), required=True)
@click.option("--iterations", type=click.IntRange(min=1), default=None, help=f"Batches per task (default {DEFAULT_ITERATIONS}).")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None, help="Epochs per task (instead of --iterations).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)), default="rmsprop", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--momentum", type=click.FloatRange(min=0), default=None, help="SGD/RMSprop momentum (default 0.9 for SGD, 0 for RMSprop).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--mask", "mask_kind", type=click.Choice(MASK_KINDS), default=None, help="Mask kind (default per model).")
@click.option("--sparsity", type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True,
              help="Fraction of weights kept by top-k masks.")
@click.option("--score-init", type=click.Choice(SCORE_INITS), default=None, help="Score init (default per model).")
@click.option("--output-size", type=click.IntRange(min=1), default=None, help="Output units (default: number of classes).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Hidden width or base channels (default per model).")
@click.option("--save-scores", is_flag=True, help="Also keep each task's real-valued scores.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@seed_option
@device_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory (resumed if it exists).")
def train(dataset, data_dir, model_name, num_tasks, iterations, epochs, batch_size, optimizer, lr, momentum, weight_decay,
          mask_kind, sparsity, score_init, output_size, width, save_scores, progress, seed, device, out) -> None:
    """Train one supermask per task; rerun the same command to resume an interrupted run."""
    if iterations is not None and epochs is not None:
        raise click.UsageError("give either --iterations or --epochs, not both.")
    if iterations is None and epochs is None:
        iterations = DEFAULT_ITERATIONS
    dev = resolve_device(device)
    try:
        train_config = TrainConfig(iterations=iterations, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                                   lr=lr, momentum=momentum, weight_decay=weight_decay)
        stream_config = StreamConfig(dataset=dataset, num_tasks=num_tasks, seed=seed,
                                     data_dir=str(data_dir.resolve()) if data_dir is not None else None)
        stream = build_stream(stream_config, dev)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    try:
        model_config = ModelConfig(name=model_name, input_shape=stream.input_shape, num_tasks=0,
                                   output_size=output_size or stream.num_classes, width=width,
                                   mask_kind=mask_kind, sparsity=sparsity, score_init=score_init)
        config = RunConfig(model=model_config, stream=stream_config, train=train_config, seed=seed, save_scores=save_scores)
        run = RunDirectory.create(out, config)
        check_compatible(run, stream)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"data: {stream.note}")
    done = run.finished_tasks()
    if done:
        click.echo(f"resuming {out}: {done} of {num_tasks} task(s) already finished")
    result = train_run(run, device=dev, stream=stream, progress=progress,
                       on_task_end=lambda t, row: click.echo(f"task {t}: " + " ".join(f"{a:.4f}" for a in row)))
    bits = run.read_results()["mask_bits_per_task"]
    click.echo(f"accuracy matrix (R[i][j]: task j after training task i):\n{format_matrix(result.accuracy_matrix)}")
    click.echo(" ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    click.echo(f"bytes per task mask file: {result.mask_bytes_per_task[-1]} (d/8 = {bits / 8:.0f} for d = {bits} mask bits)")
    click.echo(f"results: {run.results_path}")
