"""`supsup train`: learn one supermask per task over fixed random weights (or a baseline's state per task) into a
resumable run directory."""
from __future__ import annotations

import functools
from pathlib import Path

import click

from supsup_core.data.datasets import load_data
from supsup_core.data.streams import STREAMS, StreamConfig, build_stream
from supsup_core.infer.nn_training import NNConfig, train_nn_run
from supsup_core.nn.method import Method
from supsup_core.nn.models import MODELS, ModelConfig
from supsup_core.nn.supermask import MASK_KINDS, SCORE_INITS
from supsup_core.train.continual import check_compatible, train_run
from supsup_core.train.methods import METHODS, get_method, method_train_config
from supsup_core.train.runs import RunConfig, RunDirectory
from supsup_core.train.training import (
    DEFAULT_ITERATIONS,
    OPTIMIZERS,
    uses_fused_rmsprop,
)
from tools.options import (
    FiniteFloatRange,
    device_option,
    option_given,
    resolve_device,
    seed_option,
    user_errors,
)


def format_matrix(matrix: list[list[float]]) -> str:
    """The accuracy matrix as aligned text, one row per trained task."""
    return "\n".join(f"  after task {i:>3}: " + " ".join(f"{a:.4f}" for a in row) for i, row in enumerate(matrix))


def _refuse_method_options(ctx: click.Context, method: Method, scenario: str, num_tasks: int) -> None:
    """Options that mean nothing for the chosen method are refused with the reason (before anything is written)."""
    if not method.uses_masks:
        for name in ("mask_kind", "density", "score_init", "save_scores", "transfer"):
            if option_given(ctx, name):
                flag = {"mask_kind": "mask"}.get(name, name).replace("_", "-")
                raise click.UsageError(f"--{flag} configures supermasks, but --method {method.name} trains none; drop it, "
                                       "or use --method supsup.")
    if scenario == "NN" and not method.uses_masks:
        raise click.UsageError(f"--scenario NN allocates SupSup supermasks without task ids; --method {method.name} trains "
                               "task by task only. Drop --scenario NN, or use --method supsup.")
    if option_given(ctx, "shared_lr") and option_given(ctx, "lr") and not method.trains_task_state:
        raise click.UsageError(f"--method {method.name} trains only weights shared between tasks, at --shared-lr (or --lr "
                               "when --shared-lr is not given); give one of the two.")
    if option_given(ctx, "shared_lr") and not any(method.trains_shared(t) for t in range(num_tasks)):
        raise click.UsageError(f"--shared-lr sets the learning rate of weights shared between tasks, but --method "
                               f"{method.name} trains none; drop it.")


def _refuse_ignored_options(ctx: click.Context, scenario: str, model_config: ModelConfig, save_scores: bool) -> None:
    """Options that would have no effect are refused with the reason, never silently ignored."""
    given = functools.partial(option_given, ctx)
    kind = model_config.mask_config().kind
    if given("density") and kind != "topk":
        raise click.UsageError(f"--density sets the fraction kept by top-k masks, but this run's masks are {kind} masks "
                               f"(the default for {model_config.name}: a weight is kept where its score is >= 0). "
                               "Add --mask topk, or drop --density.")
    if scenario != "NN":
        for name in ("check_every", "epsilon"):
            if given(name):
                raise click.UsageError(f"--{name.replace('_', '-')} applies to --scenario NN only; drop it or add --scenario NN.")
    elif save_scores:
        raise click.UsageError("--save-scores keeps each task's scores, but an NN run stores only its masks; drop it.")


@click.command()
@click.option("--dataset", type=click.Choice(sorted(STREAMS)), required=True, help="Task stream.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of MNIST IDX files (flat or MNIST/raw/); default: scikit-learn's 8x8 digits.")
@click.option("--model", "model_name", type=click.Choice(sorted(MODELS)), required=True, help="Architecture.")
@click.option("--method", type=click.Choice(list(METHODS)), default="supsup", show_default=True,
              help="Continual-learning method (supsup_core.train.methods.METHODS); recorded in config.json. The "
                   "baselines (psp-*, batchensemble, finetune*, separate) build lenet or fc1024 and take the "
                   "reference's optimizer settings where --optimizer/--lr/--shared-lr are not given.")
@click.option("--context-powers", is_flag=True,
              help="psp-rotation/psp-complex: task t uses the (t+1)-th power of one context (nothing stored per task).")
@click.option("--num-tasks", type=click.IntRange(min=1), required=True)
@click.option("--iterations", type=click.IntRange(min=1), default=None, help=f"Batches per task (default {DEFAULT_ITERATIONS}).")
@click.option("--epochs", type=FiniteFloatRange(min=0, min_open=True), default=None, help="Epochs per task (instead of --iterations).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)), default="rmsprop", show_default=True,
              help="Default per method: batchensemble adam, the others rmsprop.")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=1e-4, show_default=True,
              help="Default per method: batchensemble 1e-2 (its fast weights), the others 1e-4.")
@click.option("--momentum", type=FiniteFloatRange(min=0), default=None, help="SGD/RMSprop momentum (default 0.9 for SGD, 0 for RMSprop).")
@click.option("--weight-decay", type=FiniteFloatRange(min=0), default=0.0, show_default=True)
@click.option("--shared-lr", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Learning rate of weights shared between tasks (psp-*, finetune*, batchensemble's first task); default --lr.")
@click.option("--mask", "mask_kind", type=click.Choice(MASK_KINDS), default=None, help="Mask kind (default per model).")
@click.option("--density", "--sparsity", "density", type=FiniteFloatRange(min=0, max=1, min_open=True), default=0.5,
              show_default=True, help="Fraction of weights kept by top-k masks (refused with threshold masks); "
                                      "--sparsity is the reference code's name for it.")
@click.option("--score-init", type=click.Choice(SCORE_INITS), default=None, help="Score init (default per model).")
@click.option("--output-size", type=click.IntRange(min=1), default=None, help="Output units (default: number of classes).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Hidden width or base channels (default per model).")
@click.option("--save-scores", is_flag=True, help="Also keep each task's real-valued scores.")
@click.option("--transfer", is_flag=True, help="Start each task's scores at the mean of the earlier tasks' scores (implies --save-scores).")
@click.option("--scenario", type=click.Choice(["GG", "NN"]), default="GG", show_default=True,
              help="GG: one mask per task, task ids given. NN: no task ids; a new mask is allocated when the data looks new.")
@click.option("--check-every", type=click.IntRange(min=1), default=100, show_default=True, help="NN: batches between novelty checks.")
@click.option("--epsilon", type=FiniteFloatRange(min=0, min_open=True), default=2.0**-3, show_default=True,
              help="NN: new data when max softmax(-dH/dalpha) < (1 + epsilon) / n.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
@click.option("--data-seed", type=click.IntRange(min=0, max=2**32 - 1), default=None,
              help="Seeds the task definitions (PermutedMNIST's permutations); default: --seed. --seed then fixes the "
                   "weights, scores and batch order, so runs with one --data-seed and several --seed see the same tasks.")
@seed_option
@device_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory (resumed if it exists).")
@click.pass_context
def train(ctx, dataset, data_dir, model_name, method, context_powers, num_tasks, iterations, epochs, batch_size, optimizer, lr,
          momentum, weight_decay, shared_lr, mask_kind, density, score_init, output_size, width, save_scores, transfer, scenario,
          check_every, epsilon, progress, data_seed, seed, device, out) -> None:
    """Train one supermask per task (GG; rerun the same command to resume) or without task ids (NN); or a
    baseline's state per task (--method: PSP, BatchEnsemble, fine-tuning, separate networks).

    Every option is checked, and the data read, before anything is written. Errors in the options exit
    with status 2; errors in the data or the run directory (corrupted files, a run with other options,
    another process writing it) with status 1.
    """
    if scenario == "NN" and transfer:
        raise click.UsageError("--transfer needs task boundaries; it applies to --scenario GG only.")
    if iterations is not None and epochs is not None:
        raise click.UsageError("give either --iterations or --epochs, not both.")
    dev = resolve_device(device)
    try:
        method_object = get_method(method, seed=seed, context_powers=context_powers)
        _refuse_method_options(ctx, method_object, scenario, num_tasks)
        # the method's reference optimizer settings where these options were not given
        settings = {key: value if option_given(ctx, key) else None for key, value in
                    (("optimizer", optimizer), ("lr", lr), ("shared_lr", shared_lr))}
        train_config = method_train_config(method, iterations=iterations, epochs=epochs, batch_size=batch_size,
                                           momentum=momentum, weight_decay=weight_decay, **settings)
        stream_config = StreamConfig(dataset=dataset, num_tasks=num_tasks, seed=seed if data_seed is None else data_seed,
                                     data_dir=str(data_dir.resolve()) if data_dir is not None else None)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    with user_errors():  # the data folder's files: a damaged file is not a misuse of the options
        data = load_data(stream_config.data_dir, test_fraction=stream_config.test_fraction)
    try:
        stream = build_stream(stream_config, dev, data=data)
        model_config = ModelConfig(name=model_name, input_shape=stream.input_shape, num_tasks=0,
                                   output_size=output_size or stream.num_classes, width=width,
                                   mask_kind=mask_kind, density=density, score_init=score_init)
        config = RunConfig(model=model_config, stream=stream_config, train=train_config, seed=seed,
                           save_scores=save_scores, transfer=transfer, method=method, context_powers=context_powers)
        nn_config = NNConfig(train=train_config, check_every=check_every, epsilon=epsilon) if scenario == "NN" else None
        check_compatible(config, stream)  # before anything is written
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    _refuse_ignored_options(ctx, scenario, model_config, save_scores)
    with user_errors(), RunDirectory.create(out, config) as run:  # holds the run's lock until the command ends
        click.echo(f"data: {stream.note}")
        if uses_fused_rmsprop(train_config, dev):
            sweep = "one sweep per step, mask included" if method_object.uses_masks else "float32 tensors; others take torch's"
            click.echo(f"optimizer: RMSprop, fused CPU kernel ({sweep}; SUPSUP_FUSED=0 for torch's)")
        if nn_config is not None:
            _train_nn(run, nn_config, stream, dev, progress)
            return
        done = run.finished_tasks()
        if done:
            click.echo(f"resuming {out}: {len(done)} of {num_tasks} task(s) already finished")
        result = train_run(run, device=dev, stream=stream, progress=progress,
                           on_task_end=lambda t, row: click.echo(f"task {t}: " + " ".join(f"{a:.4f}" for a in row)))
        results = run.read_results()
    click.echo(f"accuracy matrix (R[i][j]: task j after training task i):\n{format_matrix(result.accuracy_matrix)}")
    metrics = {**result.metrics, **({"fwt": results.fwt} if results.fwt is not None else {})}
    click.echo(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    bits = results.mask_bits_per_task
    if method_object.uses_masks:
        click.echo(f"bytes per task mask file: {result.mask_bytes_per_task[-1]} (d/8 = {bits / 8:.0f} for d = {bits} mask bits)")
    else:
        click.echo(f"bytes per task: {result.mask_bytes_per_task[-1]} in its task file, {results.memory_bytes_per_task} in memory; "
                   f"shared weights: {results.shared_bytes}")
    click.echo(f"results: {run.results_path}")


def _train_nn(run: RunDirectory, config: NNConfig, stream, device, progress: bool) -> None:
    results = train_nn_run(run, config, device=device, stream=stream, progress=progress)  # evaluated GNs, one-shot, entropy
    allocations = [c for c in results.checks if c.allocated]
    click.echo("masks allocated at batches: " + ", ".join(f"{c.batch} (task {c.true_task})" for c in allocations))
    click.echo(f"masks allocated: {results.masks_allocated} for {results.true_tasks} true tasks; "
               f"mask trained most per task: {results.mask_of_task}")
    click.echo("accuracy without task ids (GNs, one-shot, entropy): " + " ".join(f"{a:.4f}" for a in results.per_task_accuracy))
    click.echo(f"average accuracy {results.average_accuracy:.4f}; task (mask) inference {results.task_inference_accuracy:.4f}; "
               f"with each task's own mask {results.own_mask_average_accuracy:.4f}")
    click.echo(f"results: {run.results_path}")
