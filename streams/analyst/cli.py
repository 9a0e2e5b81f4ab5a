"""`algo analyst train|evaluate|score|backfill|feed|replay`: the Analyst from the command line."""
from __future__ import annotations

import click


def _settings():
    from streams.settings import get_settings

    return get_settings()


@click.group()
def analyst() -> None:
    """The Analyst: news sentiment with as-of retrieval over pgvector, and replayable votes."""


@analyst.command("replay")
@click.argument("signal_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay_command(signal_id: str, as_json: bool) -> None:
    """Re-derive a recorded analyst vote offline from its record and say whether it matches."""
    import json
    import sys

    from streams.analyst.service import replay_vote

    report = replay_vote(_settings(), signal_id)
    if as_json:
        click.echo(json.dumps({"signal_id": report.signal_id, "matches": report.matches,
                               "differences": report.differences, "recorded": report.recorded["signal"],
                               "rederived": report.rederived}))
    else:
        vote = report.rederived["signal"]
        click.echo(f"signal {signal_id}: {vote['action']} {report.recorded['inputs']['symbol']} "
                   f"confidence {vote['confidence']:.4f}")
        click.echo(f"  {vote['rationale']}")
        click.echo(f"  inputs: news:{report.recorded['inputs']['news_id']} + "
                   f"{len(report.recorded['inputs']['context'])} retrieved item(s); versions "
                   + ", ".join(f"{k}={v}" for k, v in sorted(report.recorded['versions'].items())))
        if report.matches:
            click.echo("  re-derived: matches the record bit for bit")
        else:
            click.echo("  re-derived: DIFFERS")
            for line in report.differences:
                click.echo(f"    {line}")
    sys.exit(0 if report.matches else 2)
