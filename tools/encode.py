"""`supsup encode`: write a trained run's task masks into a Hopfield memory store file."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks import RULES
from supsup_core.hopsupsup import encode_run
from supsup_core.runs import RunDirectory
from tools.options import device_option, resolve_device, user_errors


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rule", type=click.Choice(sorted(RULES)), required=True, help="Learning rule of the memory.")
@click.option("--backend", type=click.Choice(["auto", "dense", "implicit"]), default="auto", show_default=True,
              help="dense: a d×d matrix; implicit: packed patterns + K×K matrices (auto: the rule's first backend).")
@click.option("--beta", type=click.FloatRange(0, min_open=True), default=None, help="Modern rule: inverse temperature.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="Store file to write (safetensors).")
@device_option
def encode(run_dir: Path, rule: str, backend: str, beta: float | None, out_path: Path, device: str | None) -> None:
    """Store every task's masks of RUN_DIR as energy minima of one Hopfield memory."""
    options = {} if beta is None else {"beta": beta}
    with user_errors():
        run = RunDirectory.open(run_dir)
        if out_path.exists() and out_path.resolve().is_relative_to(run.path.resolve() / "masks"):
            raise ValueError(f"--out {out_path} is inside the run's masks folder; write the store elsewhere.")
        memory = encode_run(run, rule=rule, backend=None if backend == "auto" else backend,
                            device=resolve_device(device), **options)
        memory.save(out_path)
    packed = memory.count * ((memory.dim + 7) // 8)
    click.echo(f"stored {memory.count} task(s) of d = {memory.dim} mask bits with rule {rule!r} "
               f"({memory.backend} backend: {memory.nbytes:,} bytes; packed masks would be {packed:,} bytes)")
    click.echo(f"store: {out_path}")
