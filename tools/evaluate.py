"""`supsup evaluate RUN`: test accuracy of a trained run's tasks in a continual-learning scenario."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks.io import write_json
from supsup_core.evaluation import evaluate_gg
from supsup_core.gn_evaluation import GNConfig, evaluate_run_gn
from supsup_core.inference import INFERENCE
from supsup_core.objectives import OBJECTIVES
from supsup_core.runs import RunDirectory
from supsup_core.streams import build_stream
from tools.options import device_option, json_option, resolve_device

SCENARIOS = ("GG", "GNs", "GNu")


def _evaluate_gn(run: RunDirectory, scenario: str, inference: str, objective: str, images_per_inference: int,
                 max_images_per_task: int | None, real_outputs: int | None, device, progress: bool) -> dict:
    stream = build_stream(run.config.stream, device)
    config = GNConfig(scenario=scenario, inference=inference, objective=objective,
                      real_outputs=real_outputs or stream.num_classes, images_per_inference=images_per_inference,
                      max_images_per_task=max_images_per_task)
    result = evaluate_run_gn(run, config, device=device, stream=stream, progress=progress)
    for task_id, (accuracy, inferred, gg) in enumerate(zip(result.per_task_accuracy, result.per_task_inference_accuracy,
                                                           result.gg_per_task_accuracy)):
        click.echo(f"task {task_id}: {accuracy:.4f} (task inferred right {inferred:.4f}; GG on the same images {gg:.4f})")
    click.echo(f"average accuracy ({scenario}, {inference}, {objective}, {images_per_inference} image(s) per inference): "
               f"{result.average_accuracy:.4f}")
    click.echo(f"task-inference accuracy: {result.task_inference_accuracy:.4f} over {result.inferences} inferences "
               f"({result.seconds:.1f} s)")
    click.echo(f"GG on the same images: {result.gg_average_accuracy:.4f}")
    return {"scenario": scenario, "inference": inference, "objective": objective, "real_outputs": config.real_outputs,
            "images_per_inference": images_per_inference, "max_images_per_task": max_images_per_task, **result._asdict()}


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--scenario", type=click.Choice(SCENARIOS), default="GG", show_default=True,
              help="GG: task id given at test time; GNs/GNu: task id inferred (GNu: a wrongly inferred batch scores 0).")
@click.option("--inference", type=click.Choice(sorted(INFERENCE)), default="oneshot", show_default=True,
              help="GN: one gradient step (oneshot) or halving the candidates (binary).")
@click.option("--objective", type=click.Choice(sorted(OBJECTIVES)), default="entropy", show_default=True,
              help="GN: output entropy, or superfluous neurons (needs a run trained with --output-size > classes).")
@click.option("--images-per-inference", type=click.IntRange(min=1), default=128, show_default=True,
              help="GN: test images whose task is inferred together (1 = single-image inference).")
@click.option("--max-images-per-task", type=click.IntRange(min=1), default=None,
              help="GN: use only the first N test images of each task (default: all).")
@click.option("--real-outputs", type=click.IntRange(min=1), default=None,
              help="GN: class outputs; the rest are superfluous (default: the dataset's number of classes).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars (GN).")
@device_option
@json_option
def evaluate(run_dir: Path, scenario: str, inference: str, objective: str, images_per_inference: int,
             max_images_per_task: int | None, real_outputs: int | None, progress: bool, device: str | None,
             json_path: str | None) -> None:
    """Evaluate every stored task of RUN and print per-task and average accuracy."""
    dev = resolve_device(device)
    try:
        run = RunDirectory.open(run_dir)
        if scenario == "GG":
            result = evaluate_gg(run, device=dev)
            for task_id, accuracy in enumerate(result.per_task_accuracy):
                click.echo(f"task {task_id}: {accuracy:.4f}")
            click.echo(f"average accuracy ({scenario}): {result.average_accuracy:.4f}")
            output = {"scenario": scenario, "per_task_accuracy": result.per_task_accuracy, "average_accuracy": result.average_accuracy}
        else:
            output = _evaluate_gn(run, scenario, inference, objective, images_per_inference, max_images_per_task,
                                  real_outputs, dev, progress)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    if json_path:
        write_json(json_path, output)
