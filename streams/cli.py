"""`algo`: the one entry point. Subcommands are thin; the work lives in the modules they call."""
from __future__ import annotations

import sys

import click

from streams.errors import AlgoError


class AlgoGroup(click.Group):
    """Turns every AlgoError into a one-line message and exit status 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AlgoError as error:
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(1)


@click.group(cls=AlgoGroup)
def cli() -> None:
    """Autonomous multi-agent trading pipeline on Kafka."""


def main() -> None:
    cli(prog_name="algo")


if __name__ == "__main__":
    main()
