"""`algo deadletter list|show|replay`: inspect dead letters and re-drive them once the cause is fixed."""
from __future__ import annotations

import json
import sys

import click

from streams.bus.deadletter import (DeadLetter, Selector, parse_since, read_dead_letters, replay_dead_letters)


def _settings():
    from streams.settings import get_settings

    return get_settings()


def _selector(topic: str | None, agent: str | None, since: str | None) -> Selector:
    return Selector(topic=topic, agent=agent, since=parse_since(since) if since else None)


_selector_options = [
    click.option("--topic", default=None, help="Only dead letters read from this topic (e.g. market.ticks)."),
    click.option("--agent", default=None, help="Only those this agent rejected (e.g. bars, analyst)."),
    click.option("--since", default=None, help="Only those dead-lettered since: an ISO 8601 time or an age (30m, 2h, 7d)."),
]


def selector_options(command):
    for option in reversed(_selector_options):
        command = option(command)
    return command


@click.group()
def deadletter() -> None:
    """Messages the agents could not process, kept raw with the reason (topic `dead-letter`)."""


def _table(letters: list[DeadLetter]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for column in ("id", "dead-lettered", "agent", "source", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        row = letter.summary()
        table.add_row(row["id"], row["ts"][:19], row["agent"], letter.source,
                      f"{row['error_type']}: {row['error']}")
    # piped output is not cut to 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@deadletter.command("list")
@selector_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show the newest N.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="A table, or one JSON object per line.")
def list_command(topic: str | None, agent: str | None, since: str | None, limit: int, output: str) -> None:
    """The newest dead letters, newest first."""
    letters = read_dead_letters(_settings(), _selector(topic, agent, since), limit=limit, newest_first=True)
    if output == "json":
        for letter in letters:
            click.echo(json.dumps(letter.summary()))
    elif letters:
        _table(letters)
    else:
        click.echo("no dead letters match")


@deadletter.command("show")
@click.argument("letter_id", metavar="ID")
@click.option("--full", is_flag=True, help="The whole value (base64), not its first 64 bytes.")
def show_command(letter_id: str, full: bool) -> None:
    """One dead letter (ID as `list` shows it, PARTITION:OFFSET) as a JSON object."""
    (letter,) = read_dead_letters(_settings(), ids=[letter_id])
    click.echo(json.dumps(letter.detail(full=full), indent=2))


@deadletter.command("replay")
@click.argument("letter_ids", nargs=-1, metavar="[IDS]...")
@selector_options
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter (or every one the selectors match).")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay_command(letter_ids: tuple[str, ...], topic: str | None, agent: str | None, since: str | None,
                   replay_all: bool, dry_run: bool, as_json: bool) -> None:
    """Publish dead letters again, raw, to the partition they came from (header algo-replayed-from: ID),
    with acks=all through an idempotent producer. Name IDS, or select with --topic/--agent/--since, or
    pass --all. A message that is still bad is dead-lettered again, under a new id."""
    selector = _selector(topic, agent, since)
    if letter_ids and not selector.empty:
        raise click.UsageError("name dead letters by ID or select them with --topic/--agent/--since, not both")
    if not letter_ids and selector.empty and not replay_all:
        raise click.UsageError("say which dead letters to replay: IDS, --topic/--agent/--since, or --all")
    settings = _settings()
    letters = read_dead_letters(settings, ids=letter_ids) if letter_ids else read_dead_letters(settings, selector)
    outcomes = replay_dead_letters(settings, letters, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "replayed": [o.as_dict() for o in outcomes]}))
        return
    verb = "would replay" if dry_run else "replayed"
    for outcome in outcomes:
        landed = f" at offset {outcome.offset}" if outcome.offset is not None else ""
        click.echo(f"{verb} {outcome.id} -> {outcome.source_topic}[{outcome.partition}]{landed}")
    click.echo(f"{verb} {len(outcomes)} dead letter{'s' if len(outcomes) != 1 else ''}")
