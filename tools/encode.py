"""`supsup encode`: write a trained run's task masks into a Hopfield memory store file."""
from __future__ import annotations

from pathlib import Path

import click

from hopfield_masks import DEFAULT_MAX_BYTES, RULES
from hopfield_masks.checks import parse_nbytes
from supsup_core.hopsupsup.encode import (
    check_store_path,
    encode_run,
    packed_mask_nbytes,
)
from supsup_core.train.runs import RunDirectory
from tools.options import (
    FiniteFloatRange,
    check_output_parent,
    device_option,
    resolve_device,
    user_errors,
)

BACKEND_HELP = ("dense: a d×d matrix (d = mask bits; fast, but d² floats); implicit: the packed patterns + K×K "
                "matrices (O(K·d/8)). auto: dense while its d×d matrix (and work copies) fit in 1 GiB and "
                "--max-memory, else implicit where the rule has one (every rule but storkey), since a run's d is "
                "often 10^5-10^6 and d² floats would not fit in memory.")


class ByteSize(click.ParamType):
    """A size in bytes: 2147483648, 512M, 4G, 1.5GiB (units are powers of 1024)."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_nbytes(value, "the size")
        except ValueError as err:
            self.fail(str(err), param, ctx)


def max_memory_option(func):
    """``--max-memory``: the bound every memory checks its estimated bytes against before allocating."""
    return click.option(
        "--max-memory", "max_bytes", type=ByteSize(), default=f"{DEFAULT_MAX_BYTES >> 30}G",
        show_default=True,
        help="Refuse, before allocating it, a memory that would need more than this (bytes, or 512M, 4G, ...).",
    )(func)


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--rule", type=click.Choice(sorted(RULES)), default="pseudoinverse", show_default=True,
              help="Learning rule of the memory (pseudoinverse: the one `supsup recover`'s default steered method is made for).")
@click.option("--backend", type=click.Choice(["auto", "dense", "implicit"]), default="auto", show_default=True,
              help=BACKEND_HELP)
@click.option("--beta", type=FiniteFloatRange(0, min_open=True), default=None, help="Modern rule: inverse temperature.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              callback=check_output_parent,
              help="Store file to write (safetensors); not a file the run uses, and it replaces only an earlier store.")
@max_memory_option
@device_option
def encode(run_dir: Path, rule: str, backend: str, beta: float | None, out_path: Path, max_bytes: int,
           device: str | None) -> None:
    """Store every task's masks of RUN_DIR as energy minima of one Hopfield memory."""
    if beta is not None and rule != "modern":
        raise click.BadParameter("--beta applies to --rule modern only; drop it.", param_hint="--beta")
    options = {} if beta is None else {"beta": beta}
    with user_errors():
        run = RunDirectory.open(run_dir)
        check_store_path(run, out_path)
        memory = encode_run(run, rule=rule, backend=backend, device=resolve_device(device), max_bytes=max_bytes,
                            **options)
        memory.save(out_path)
    packed = packed_mask_nbytes(memory.count, memory.dim)
    click.echo(f"stored {memory.count} task(s) of d = {memory.dim} mask bits with rule {rule!r} "
               f"({memory.backend} backend: {memory.nbytes:,} bytes; packed masks would be {packed:,} bytes)")
    click.echo(f"store: {out_path}")
