"""Entry point of the ``supsup`` console script: one click group, one module per command."""
from __future__ import annotations

import logging

import click

from tools.capacity import capacity
from tools.compare import compare
from tools.demo import demo
from tools.encode import encode
from tools.evaluate import evaluate
from tools.plot import plot
from tools.recover import recover
from tools.train import train


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Supermasks in Superposition with a Hopfield memory for binary masks."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


# Each command lives in its own module under tools/ and is registered here explicitly.
for command in (demo, train, evaluate, compare, plot, encode, recover, capacity):
    main.add_command(command)
