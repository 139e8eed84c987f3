"""Entry point of the ``supsup`` console script: one click group, one module per command."""
from __future__ import annotations

import logging

import click


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Supermasks in Superposition with a Hopfield memory for binary masks."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Each command lives in its own module under tools/ and is registered here explicitly.
from tools.capacity import capacity  # noqa: E402

main.add_command(capacity)
from tools.train import train  # noqa: E402

main.add_command(train)
from tools.evaluate import evaluate  # noqa: E402

main.add_command(evaluate)
from tools.encode import encode  # noqa: E402

main.add_command(encode)
from tools.recover import recover  # noqa: E402

main.add_command(recover)
from tools.demo import demo  # noqa: E402

main.add_command(demo)
