"""Options every command spells the same way: --seed, --device, --json."""
from __future__ import annotations

import contextlib

import click
import torch


def seed_option(func):
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(func)


def device_option(func):
    return click.option(
        "--device",
        type=click.Choice(["cpu", "cuda"]),
        default=None,
        help="Where to compute (default: cuda when available, else cpu).",
    )(func)


def json_option(func):
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, writable=True),
        default=None,
        help="Write machine-readable results to this JSON file.",
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
    """Turn the libraries' validation errors (which name the problem and the fix) into click errors."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
