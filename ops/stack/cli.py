"""`algo stack up|down|status`: the local stack (ops/stack/services.py) from the command line."""
from __future__ import annotations

import dataclasses
import json
import time

import click

from ops.stack import services as local_stack
from streams.settings import Settings


def _table(parts: list[local_stack.ServiceStatus], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("endpoint")
    table.add_column("pid", justify="right")
    table.add_column("state")
    table.add_column("detail", overflow="fold")
    for part in parts:
        if part.healthy and part.running:
            state = "[green]healthy[/green]"
        elif part.healthy:
            state = "[yellow]answering (not ours)[/yellow]"
        elif part.running:
            state = "[red]unhealthy[/red]"
        else:
            state = "[dim]stopped[/dim]"
        table.add_row(part.name, part.endpoint, str(part.pid or "-"), state, part.detail)
    Console().print(table)


@click.group("stack")
def stack() -> None:
    """The local stack without Docker: Kafka (KRaft), Apicurio Registry, Postgres + pgvector, Redis."""


@stack.command("up")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--brokers", type=click.IntRange(min=1), default=None,
              help="Kafka nodes: 3 is a KRaft cluster with replication factor 3 and min.insync.replicas 2, on "
                   "KAFKA_BOOTSTRAP's port and every second one after it (default: one per KAFKA_BOOTSTRAP address).")
@click.option("--secure", is_flag=True,
              help="The secure profile (as ALGO_PROFILE=secure): Kafka with SASL/SCRAM-SHA-512 over TLS and ACLs per "
                   "worker; certificates and passwords under <run dir>/secure.")
def up_command(as_json: bool, brokers: int | None, secure: bool) -> None:
    """Start what is not running and wait until every part is healthy (idempotent)."""
    from ops.stack.kafka import expanded_bootstrap
    from streams.errors import StackError

    settings = Settings.from_env()
    if secure:
        settings = dataclasses.replace(settings, profile="secure")
    if brokers is not None:
        try:
            settings = dataclasses.replace(settings, kafka_bootstrap=expanded_bootstrap(settings, brokers))
        except StackError as error:
            raise click.UsageError(str(error)) from None
    started = time.monotonic()
    say = (lambda message: click.echo(message, err=True)) if as_json else click.echo
    parts = local_stack.up(settings, progress=say)
    elapsed = time.monotonic() - started
    if as_json:
        click.echo(json.dumps({"up": True, "seconds": round(elapsed, 2),
                               "parts": [part.as_dict() for part in parts]}))
        return
    _table(parts, f"local stack up in {elapsed:.1f}s (logs under {settings.run_dir})")
    nodes = [part for part in parts if part.name.startswith("kafka")]
    bootstrap = ",".join(part.endpoint for part in nodes)
    if len(nodes) > 1:
        click.echo(f"a {len(nodes)}-node Kafka cluster: give every client all of it, "
                   f"`export KAFKA_BOOTSTRAP={bootstrap}`")
    if settings.profile == "secure":
        click.echo(f"secure profile: `export ALGO_PROFILE=secure` for every client; CA and passwords in "
                   f"{settings.secrets_folder} (credentials.json: one per principal)")
    click.echo("endpoints (also the defaults of these variables):")
    click.echo(f"  KAFKA_BOOTSTRAP={bootstrap}")
    click.echo(f"  SCHEMA_REGISTRY_URL={settings.schema_registry_url}")
    click.echo(f"  DATABASE_URL={local_stack.masked(settings.database_url)}")
    click.echo(f"  REDIS_URL={settings.redis_url}")


@stack.command("down")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def down_command(as_json: bool) -> None:
    """Stop what `algo stack up` started (by pid); idempotent."""
    settings = Settings.from_env()
    parts = local_stack.down(settings)
    if as_json:
        click.echo(json.dumps({"down": True, "parts": [part.as_dict() for part in parts]}))
        return
    _table(parts, "local stack after down")


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def status_command(as_json: bool) -> None:
    """Each part's pid, health and endpoint (the JSON's "healthy" is true when every part answers).
    Exits 1 when a part is not healthy, so scripts can wait on it."""
    settings = Settings.from_env()
    parts = local_stack.status(settings)
    healthy = all(part.healthy for part in parts)
    if as_json:
        click.echo(json.dumps({"healthy": healthy, "run_dir": str(settings.run_dir),
                               "parts": [part.as_dict() for part in parts]}))
    else:
        _table(parts, "local stack" + ("" if healthy else " (not all healthy: `algo stack up` starts the rest)"))
    if not healthy:
        raise SystemExit(1)
