"""Options every command spells the same way: --seed, --device, --json, finite floats, output files."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import click
import torch


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and ±inf (click's ranges let NaN through: every comparison
    with NaN is false)."""

    name = "float"  # shown as FLOAT in --help; the range follows in brackets

    def convert(self, value, param, ctx):
        number = click.types.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a finite value.", param, ctx)
        return super().convert(number, param, ctx)


def check_output_parent(ctx: click.Context, param: click.Parameter, value):
    """Callback for options naming a file to write: its folder must exist (nothing is created silently)."""
    if value is None:
        return value
    parent = Path(value).expanduser().absolute().parent
    if not parent.is_dir():
        raise click.BadParameter(f"the folder {parent} does not exist; create it first or choose another path.",
                                 ctx=ctx, param=param)
    return value


def option_given(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` (its parameter name) was given on the command line or from the environment."""
    return ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)


def seed_option(func):
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(func)


def device_option(func):
    return click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        default=None,
        help="Where to compute (default: cuda when available, else cpu).",
    )(func)


def output_option(name: str, text: str):
    """An option ``--NAME`` (parameter ``NAME_path``) naming a file to write, checked like --json: its folder must
    exist before anything runs."""
    return click.option(f"--{name}", f"{name}_path", type=click.Path(dir_okay=False, writable=True), default=None,
                        callback=check_output_parent, help=f"{text} (its folder must exist).")


def json_option(func):
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        callback=check_output_parent,
        help="Write machine-readable results to this JSON file (its folder must exist).",
    )(func)


def resolve_device(device: str | None) -> torch.device:
    """Turn the --device choice into a torch.device, with a clear error when CUDA is asked for but absent."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA was asked for but no CUDA GPU is available; use --device cpu.", param_hint="--device")
    return torch.device(device)


@contextlib.contextmanager
def user_errors():
    """Turn the libraries' validation errors (which name the problem and the fix) into click errors.

    They exit with status 1 and no "Try --help": a corrupted file or a busy run directory is not a misuse
    of the options. Errors that do come from the options are raised as ``click.BadParameter`` /
    ``click.UsageError`` (status 2) where they are checked.
    """
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
