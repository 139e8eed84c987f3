"""`supsup evaluate RUN`: test accuracy of a trained run's tasks in a continual-learning scenario."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks.io import write_csv, write_json
from supsup_core.checks import check_output_size
from supsup_core.data.streams import build_stream
from supsup_core.infer.gn_evaluation import (
    EVALUATION_SCENARIOS,
    GN_OPTIONS,
    GNConfig,
    check_scenario_options,
    evaluate_run_gn,
)
from supsup_core.infer.inference import INFERENCE
from supsup_core.infer.objectives import OBJECTIVES
from supsup_core.nn.method import EXHAUSTIVE_ENTROPY
from supsup_core.train.evaluation import evaluate_gg
from supsup_core.train.runs import RunDirectory
from tools.options import (
    device_option,
    json_option,
    option_given,
    output_option,
    resolve_device,
    user_errors,
)


def _refuse_gg_on_an_nn_run(run: RunDirectory) -> None:
    """evaluate_gg refuses an NN run too; checked here first so that it reads as a misuse of --scenario (exit 2)."""
    if run.scenario() == "NN":
        raise click.BadParameter(f"{run.path} is an NN run: its masks were allocated without task ids, so GG does not "
                                 "apply. Use --scenario GNs or GNu.", param_hint="--scenario")


def _check_outputs_fit_the_run(run: RunDirectory, config: GNConfig) -> None:
    """--real-outputs / --objective that this run's model cannot serve are a misuse of the options (exit 2)."""
    output_size = run.config.model.output_size
    for hint, needs_extra in (("--real-outputs", False), ("--objective", config.objective == "superfluous")):
        try:
            check_output_size(output_size, config.real_outputs, needs_extra=needs_extra)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint=hint) from err


def _evaluate_gn(run: RunDirectory, config: GNConfig, stream, device, progress: bool, *, inference: str) -> dict:
    result = evaluate_run_gn(run, config, device=device, stream=stream, progress=progress)
    for task_id, (accuracy, inferred, own) in enumerate(zip(result.per_task_accuracy, result.per_task_inference_accuracy,
                                                            result.own_mask_per_task_accuracy)):
        click.echo(f"task {task_id}: {accuracy:.4f} (task inferred right {inferred:.4f}; own mask on the same images {own:.4f})")
    click.echo(f"average accuracy ({config.scenario}, {inference}, {config.objective}, {config.images_per_inference} "
               f"image(s) per inference): {result.average_accuracy:.4f}")
    click.echo(f"task-inference accuracy: {result.task_inference_accuracy:.4f} over {result.inferences} inferences "
               f"({result.seconds:.1f} s)")
    click.echo(f"each task's own mask on the same images: {result.own_mask_average_accuracy:.4f}")
    return {"scenario": config.scenario, "inference": inference, "objective": config.objective,
            "real_outputs": config.real_outputs, "images_per_inference": config.images_per_inference,
            "max_images_per_task": config.max_images_per_task, **result._asdict()}


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenario", type=click.Choice(EVALUATION_SCENARIOS), default="GG", show_default=True,
              help="GG: task id given at test time; GNs/GNu: task id inferred (GNu: a wrongly inferred batch scores 0).")
@click.option("--inference", type=click.Choice(sorted(INFERENCE)), default="oneshot", show_default=True,
              help="GN only: one gradient step (oneshot) or halving the candidates (binary).")
@click.option("--objective", type=click.Choice(sorted(OBJECTIVES)), default="entropy", show_default=True,
              help="GN only: output entropy, or superfluous neurons (needs a run trained with --output-size > classes).")
@click.option("--images-per-inference", type=click.IntRange(min=1), default=128, show_default=True,
              help="GN only: test images whose task is inferred together (1 = single-image inference).")
@click.option("--max-images-per-task", type=click.IntRange(min=1), default=None,
              help="GN only: use only the first N test images of each task (default: all).")
@click.option("--real-outputs", type=click.IntRange(min=1), default=None,
              help="GN only: class outputs; the rest are superfluous (default: the dataset's number of classes).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar over tasks.")
@device_option
@json_option
@output_option("csv", "Write one line per task (and the average) to this CSV file")
@click.pass_context
def evaluate(ctx: click.Context, run_dir: Path, scenario: str, inference: str, objective: str, images_per_inference: int,
             max_images_per_task: int | None, real_outputs: int | None, progress: bool, device: str | None,
             json_path: str | None, csv_path: str | None) -> None:
    """Evaluate every stored task of RUN and print per-task and average accuracy."""
    try:  # options that would have no effect are refused with the reason, never silently ignored
        check_scenario_options(scenario, [name for name in GN_OPTIONS if option_given(ctx, name)])
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    dev = resolve_device(device)
    # A damaged or unfinished run is not a misuse of the options: exit 1, no "Try --help".
    with user_errors():
        run = RunDirectory.open(run_dir)
        if scenario == "GG":
            _refuse_gg_on_an_nn_run(run)
            result = evaluate_gg(run, device=dev, progress=progress)
            for task_id, accuracy in enumerate(result.per_task_accuracy):
                click.echo(f"task {task_id}: {accuracy:.4f}")
            click.echo(f"average accuracy ({scenario}): {result.average_accuracy:.4f}")
            output = {"scenario": scenario, "per_task_accuracy": result.per_task_accuracy, "average_accuracy": result.average_accuracy}
        else:
            exhaustive = run.config.build_method().task_inference == EXHAUSTIVE_ENTROPY
            if exhaustive and option_given(ctx, "inference"):
                raise click.BadParameter(f"--inference chooses how superposed masks are searched, but --method "
                                         f"{run.config.method} tries every task (exhaustive search); drop it.",
                                         param_hint="--inference")
            if exhaustive and objective != "entropy":
                raise click.BadParameter(f"--method {run.config.method} finds the task by comparing output entropies "
                                         "(exhaustive search); use --objective entropy.", param_hint="--objective")
            stream = build_stream(run.config.stream, dev)
            config = GNConfig.for_stream(stream, scenario=scenario, inference=inference, objective=objective,
                                         real_outputs=real_outputs, images_per_inference=images_per_inference,
                                         max_images_per_task=max_images_per_task)
            _check_outputs_fit_the_run(run, config)
            output = _evaluate_gn(run, config, stream, dev, progress, inference="exhaustive" if exhaustive else inference)
    if json_path:
        write_json(json_path, output)
    if csv_path:  # GN scenarios add how often each task was inferred right and its own state's accuracy
        columns = [key for key in ("per_task_accuracy", "per_task_inference_accuracy", "own_mask_per_task_accuracy")
                   if key in output]
        rows = [[t, *(output[key][t] for key in columns)] for t in range(len(output["per_task_accuracy"]))]
        averages = {"per_task_accuracy": "average_accuracy", "per_task_inference_accuracy": "task_inference_accuracy",
                    "own_mask_per_task_accuracy": "own_mask_average_accuracy"}
        rows.append(["average", *(output[averages[key]] for key in columns)])
        header = ["task", *(key.replace("per_task_", "").replace("_per_task", "") for key in columns)]
        click.echo(f"CSV written to {write_csv(csv_path, header, rows)}")
