"""`algo memory ...`: traces, the eviction policy's evaluation against libCacheSim's baselines."""
from __future__ import annotations

import json
from pathlib import Path

import click

from streams.errors import DataError


class _OneLineGroup(click.Group):
    """Bad options become one-line errors (DataError, which `algo` prints as one line) rather than
    click's usage block."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            command = f" {ctx.invoked_subcommand}" if ctx.invoked_subcommand else ""
            raise DataError(f"{error.format_message()} (algo memory{command} --help)") from None


def _say(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=_OneLineGroup)
def memory() -> None:
    """The Memory agent's cache traces and eviction policy: generate, record, train, evaluate."""


@memory.command()
@click.option("--workload", required=True, help="zipf-drift, volatility-bursts, backtest-scans or mixed.")
@click.option("--requests", "requests_count", type=int, default=200_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The CSV trace to write.")
def generate(workload: str, requests_count: int, seed: int, out_path: str) -> None:
    """Write a synthetic trace (streams/memory/synthetic.py documents each workload)."""
    from streams.memory.synthetic import generate as generate_trace
    from streams.memory.synthetic import write_generated

    trace = generate_trace(workload, requests_count, seed)
    write_generated(trace, out_path)
    click.echo(f"{out_path}: {len(trace)} requests, {trace.distinct()} distinct keys ({workload}, seed {seed})")


@memory.command()
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The CSV trace to write.")
@click.option("--from-beginning", is_flag=True, help="Read cache.access from its start (default: from now on).")
@click.option("--limit", type=int, default=None, help="Stop after this many accesses.")
@click.option("--idle-timeout", "idle_timeout_s", type=float, default=10.0, show_default=True,
              help="Stop after this many seconds without a new access.")
def record(out_path: str, from_beginning: bool, limit: int | None, idle_timeout_s: float) -> None:
    """Record the pipeline's own access log (cache.access) as a trace CSV: time,key,size,volatility."""
    from streams.memory.record import record_trace
    from streams.settings import get_settings

    summary = record_trace(get_settings(), Path(out_path), from_beginning=from_beginning, limit=limit,
                           idle_timeout_s=idle_timeout_s, progress=_say)
    skipped = f"; {summary.skipped} undecodable message(s) skipped" if summary.skipped else ""
    click.echo(f"{out_path}: {summary.requests} accesses, {summary.distinct} distinct keys, "
               f"{summary.symbols} symbol(s) with volatility{skipped}")


@memory.command()
@click.option("--trace", "trace_path", required=True, type=click.Path(dir_okay=False),
              help="CSV trace: time,key,size[,volatility] with a header.")
@click.option("--sizes", default="0.01,0.05,0.1", show_default=True,
              help="Cache sizes as fractions of the distinct keys (of the distinct bytes with --bytes).")
@click.option("--train-fraction", default="0.5", show_default=True,
              help="The policy trains on this first share of the requests; everything is scored on the rest.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--bytes", "use_bytes", is_flag=True, help="Size caches in bytes (default: objects, unit sizes).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rl-timesteps", type=int, default=None,
              help="PPO fine-tuning decisions after imitation (0: imitation only) [default: 20000].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Miss-ratio-curve PNG [default: <trace>.mrc.png next to the trace; none with --json unless given].")
def evaluate(trace_path: str, sizes: str, train_fraction: str, as_json: bool, use_bytes: bool, seed: int,
             rl_timesteps: int | None, plot_path: str | None) -> None:
    """Train on the first part of a trace, then score the agent and every baseline on the rest."""
    from streams.memory import evaluate as evaluation

    fractions = evaluation.parse_sizes(sizes)
    try:
        fraction = float(train_fraction)
    except ValueError:
        raise DataError(f"--train-fraction must be a number in (0, 1), got {train_fraction!r}") from None
    if not 0.0 < fraction < 1.0:
        raise DataError(f"--train-fraction must be in (0, 1), got {train_fraction}")
    if not Path(trace_path).is_file():
        raise DataError(f"--trace {trace_path}: no such file")
    report = evaluation.evaluate(trace_path, sizes=fractions, train_fraction=fraction, use_bytes=use_bytes, seed=seed,
                                 rl_timesteps=evaluation.DEFAULT_RL_TIMESTEPS if rl_timesteps is None else rl_timesteps,
                                 progress=_say)
    if plot_path or not as_json:
        written = evaluation.write_plot(report, plot_path or evaluation.default_plot_path(trace_path))
        _say(f"miss-ratio curve: {written}")
    if as_json:
        click.echo(json.dumps(report))
        return
    _print_tables(report)


def _print_tables(report: dict) -> None:
    from streams.memory.evaluate import format_tables, table_rows

    click.echo(f"{report['trace']}: {report['requests']} requests, {report['distinct']} distinct keys; "
               f"trained on the first {report['train_requests']}, scored on the last {report['scored_requests']}; "
               f"policy {report['policy']['version']}")
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for line in format_tables(report):
            click.echo(line)
        return
    console = Console()
    for row in report["sizes"]:
        table = Table(title=f"cache = {row['fraction']:g} of the distinct {report['unit']} ({row['capacity']}); "
                            f"best classical {row['best_classical']}, agent beats it: "
                            f"{'yes' if row['agent_beats_best_classical'] else 'no'}")
        table.add_column("policy")
        table.add_column("miss ratio", justify="right")
        if "byte_miss_ratio" in row:
            table.add_column("byte miss ratio", justify="right")
        table.add_column("gap closed", justify="right")
        for name, cells in table_rows(row):
            table.add_row(name, *cells)
        console.print(table)


@memory.command()
@click.option("--trace", "trace_paths", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="A CSV trace (time,key,size[,volatility]); repeat to train on several, one after the other.")
@click.option("--sizes", default="0.01,0.05,0.1", show_default=True,
              help="Cache sizes to train for, as fractions of the distinct keys (bytes with --bytes).")
@click.option("--bytes", "use_bytes", is_flag=True, help="Size caches in bytes (default: objects, unit sizes).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rl-timesteps", type=int, default=20_000, show_default=True,
              help="PPO fine-tuning decisions after imitation of Belady (0: imitation only).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for model.safetensors + metadata.json.")
@click.option("--register", is_flag=True, help="Also register the policy in Postgres (model_versions, model 'memory').")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train(trace_paths: tuple[str, ...], sizes: str, use_bytes: bool, seed: int, rl_timesteps: int, out_dir: str,
          register: bool, as_json: bool) -> None:
    """Train the eviction policy on the whole of the given traces and save it."""
    from streams.memory.evaluate import parse_sizes
    from streams.memory.train import run_training

    if rl_timesteps < 0:
        raise DataError(f"--rl-timesteps must be >= 0, got {rl_timesteps}")
    for path in trace_paths:
        if not Path(path).is_file():
            raise DataError(f"--trace {path}: no such file")
    summary = run_training(list(trace_paths), sizes=parse_sizes(sizes), use_bytes=use_bytes, seed=seed,
                           rl_timesteps=rl_timesteps, out=out_dir, register=register, progress=_say)
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    stages = summary["training"]["stages"]
    for name, stage in stages.items():
        click.echo(f"{name:>20}  validation miss ratio {stage['validation_miss_ratio']:.4f}")
    click.echo(f"chosen: {summary['training']['chosen']}; saved {summary['version']} to {summary['out']}")
