"""`supsup train`: learn one supermask per task over fixed random weights into a resumable run directory."""
from __future__ import annotations

from pathlib import Path

import click

from supsup_core.continual import check_compatible, train_run
from supsup_core.gn_evaluation import GNConfig
from supsup_core.models import MODELS, ModelConfig
from supsup_core.nn_training import NNConfig, train_nn_run
from supsup_core.runs import RunConfig, RunDirectory
from supsup_core.streams import STREAMS, StreamConfig, build_stream
from supsup_core.supermask import MASK_KINDS, SCORE_INITS
from supsup_core.training import OPTIMIZERS, TrainConfig, uses_fused_rmsprop
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
@click.option("--transfer", is_flag=True, help="Start each task's scores at the mean of the earlier tasks' scores (implies --save-scores).")
@click.option("--scenario", type=click.Choice(["GG", "NN"]), default="GG", show_default=True,
              help="GG: one mask per task, task ids given. NN: no task ids; a new mask is allocated when the data looks new.")
@click.option("--check-every", type=click.IntRange(min=1), default=100, show_default=True, help="NN: batches between novelty checks.")
@click.option("--epsilon", type=click.FloatRange(min=0, min_open=True), default=2.0**-3, show_default=True,
              help="NN: new data when max softmax(-dH/dalpha) < (1 + epsilon) / n.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@seed_option
@device_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory (resumed if it exists).")
def train(dataset, data_dir, model_name, num_tasks, iterations, epochs, batch_size, optimizer, lr, momentum, weight_decay,
          mask_kind, sparsity, score_init, output_size, width, save_scores, transfer, scenario, check_every, epsilon,
          progress, seed, device, out) -> None:
    """Train one supermask per task (GG; rerun the same command to resume) or without task ids (NN)."""
    if scenario == "NN" and transfer:
        raise click.UsageError("--transfer needs task boundaries; it applies to --scenario GG only.")
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
        config = RunConfig(model=model_config, stream=stream_config, train=train_config, seed=seed,
                           save_scores=save_scores or transfer, transfer=transfer)
        run = RunDirectory.create(out, config)
        check_compatible(run, stream)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"data: {stream.note}")
    if uses_fused_rmsprop(train_config, dev):
        click.echo("optimizer: RMSprop, fused CPU kernel (one sweep per step, mask included; SUPSUP_FUSED=0 for torch's)")
    if scenario == "NN":
        _train_nn(run, NNConfig(train=train_config, check_every=check_every, epsilon=epsilon), stream, dev, progress)
        return
    done = run.finished_tasks()
    if done:
        click.echo(f"resuming {out}: {done} of {num_tasks} task(s) already finished")
    try:
        result = train_run(run, device=dev, stream=stream, progress=progress,
                           on_task_end=lambda t, row: click.echo(f"task {t}: " + " ".join(f"{a:.4f}" for a in row)))
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    bits = run.read_results()["mask_bits_per_task"]
    click.echo(f"accuracy matrix (R[i][j]: task j after training task i):\n{format_matrix(result.accuracy_matrix)}")
    click.echo(" ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    click.echo(f"bytes per task mask file: {result.mask_bytes_per_task[-1]} (d/8 = {bits / 8:.0f} for d = {bits} mask bits)")
    click.echo(f"results: {run.results_path}")


def _train_nn(run: RunDirectory, config: NNConfig, stream, device, progress: bool) -> None:
    evaluation = GNConfig(scenario="GNs", inference="oneshot", objective="entropy", real_outputs=stream.num_classes)
    try:
        results = train_nn_run(run, config, evaluation=evaluation, device=device, stream=stream, progress=progress)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    allocations = [c for c in results["checks"] if c["allocated"]]
    click.echo("masks allocated at batches: " + ", ".join(f"{c['batch']} (task {c['true_task']})" for c in allocations))
    click.echo(f"masks allocated: {results['masks_allocated']} for {results['true_tasks']} true tasks; "
               f"mask trained most per task: {results['mask_of_task']}")
    click.echo("accuracy without task ids (GNs, one-shot, entropy): " + " ".join(f"{a:.4f}" for a in results["per_task_accuracy"]))
    click.echo(f"average accuracy {results['average_accuracy']:.4f}; task (mask) inference {results['task_inference_accuracy']:.4f}; "
               f"with each task's own mask {results['own_mask_average_accuracy']:.4f}")
    click.echo(f"results: {run.results_path}")
