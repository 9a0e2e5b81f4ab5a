"""`algo`: the one entry point. Subcommands are thin; the work lives in the modules they call."""
from __future__ import annotations

import json
import os
import sys

import click

from risk_core.errors import RiskCoreError
from streams.errors import AlgoError
from streams.workers import WORKERS



class AlgoGroup(click.Group):
    """Turns every AlgoError (and the engine's RiskCoreError) into a one-line message and exit status 1 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (AlgoError, RiskCoreError) as error:
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(1)


class GreedyOption(click.Option):
    """An option that takes every value up to the next option: `--symbols AAPL MSFT IBM`."""

    def add_to_parser(self, parser, ctx):
        result = super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            original = option.process

            def process(value, state, original=original):
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                original(" ".join(values), state)

            option.process = process
        return result


def _settings():
    from streams.settings import get_settings

    return get_settings()


@click.group(cls=AlgoGroup)
def cli() -> None:
    """Autonomous multi-agent trading pipeline on Kafka."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def provision(as_json: bool) -> None:
    """Create topics, register Avro schemas (BACKWARD), apply SQL migrations. Idempotent."""
    from ops.provision import provision as run

    report = run(_settings(), progress=(lambda _: None) if as_json else (lambda s: click.echo(f"provision: {s}")))
    if as_json:
        click.echo(json.dumps(report.__dict__))
        return
    click.echo(f"topics: {len(report.topics_created)} created, {len(report.topics_existing)} already there")
    click.echo(f"schemas: {len(report.schemas)} subjects registered (ids {sorted(set(report.schemas.values()))})")
    click.echo(f"migrations: {', '.join(report.migrations_applied) or 'up to date'}")


@cli.command()
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="OHLCV CSV: date,open,high,low,close,volume[,symbol].")
@click.option("--dataset", default=None, help="Bundled dataset: stocks, sp500 or nasdaq (default stocks).")
@click.option("--symbols", cls=GreedyOption, default="", help="Symbols to replay (space or comma separated).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Publish at most N ticks in all.")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="0 = as fast as possible; X = X times real time (86400: a day per second).")
@click.option("--news", "news_path", type=click.Path(dir_okay=False),
              help="News file (CSV or JSON lines: published_at,symbols,headline,summary,source,url) to publish to "
                   "news.items, interleaved with the ticks in event time; alone, it publishes just the news.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay(csv_path: str | None, dataset: str | None, symbols: str, limit: int | None, speed: float,
           news_path: str | None, as_json: bool) -> None:
    """Publish real OHLCV data to market.ticks as ticks (4 per bar, deterministic), and news to news.items."""
    from streams.market.datasets import load_csv, load_dataset, select_symbols
    from streams.market.news import load_news
    from streams.market.replay import replay as run

    if csv_path and dataset:
        raise click.UsageError("use either --csv or --dataset, not both")
    wanted = [s for s in symbols.replace(",", " ").split() if s]
    news_only = news_path is not None and not csv_path and not dataset
    if news_only and (wanted or limit is not None):
        raise click.UsageError("--symbols and --limit select bars: with --news, name the bars with --csv or "
                               "--dataset (e.g. --dataset stocks)")
    news = load_news(news_path) if news_path is not None else None
    if news_only:
        series, source = [], "replay:news"
    elif csv_path:
        series = select_symbols(load_csv(csv_path), wanted, csv_path)
        source = f"replay:csv:{os.path.basename(csv_path)}"
    else:
        series = load_dataset(dataset or "stocks", wanted)
        source = f"replay:{dataset or 'stocks'}"
    report = run(_settings(), series, source, speed=speed, limit=limit, show_progress=not as_json, news=news)
    summary = {"ticks": report.ticks, "news": report.news, "seconds": round(report.seconds, 3),
               "ticks_per_second": round(report.ticks_per_second, 1), "per_symbol": dict(report.per_symbol)}
    if as_json:
        click.echo(json.dumps(summary))
    elif news_only:
        click.echo(f"published {report.news} news items in {report.seconds:.2f} s to news.items")
    else:
        news_part = f" and {report.news} news items to news.items" if news is not None else ""
        click.echo(f"published {report.ticks} ticks for {len(report.per_symbol)} symbols in "
                   f"{report.seconds:.2f} s ({report.ticks_per_second:,.0f} ticks/s) to market.ticks{news_part}")


@cli.command()
@click.argument("name", type=click.Choice(sorted(WORKERS)))
@click.option("--loglevel", default="info", show_default=True)
def worker(name: str, loglevel: str) -> None:
    """Run one agent (or all) as a Faust worker until stopped."""
    import importlib

    from streams.settings import configure

    configure(worker=name)  # before the agent modules import streams.app, which names the Faust app from it
    for module in WORKERS[name]:
        importlib.import_module(module)
    from faust import Worker

    from ops.provision import ensure_changelog_topics
    from streams.app import app, settings

    if settings.worker != name:
        raise AlgoError(f"streams.app was imported before the worker was named: it runs as {settings.worker!r}")

    ensure_changelog_topics(settings, [(table.changelog_topic.topics[0], table.partitions or settings.topic_partitions)
                                       for table in app.tables.values()])
    Worker(app, loglevel=loglevel).execute_from_commandline()


@cli.command()
@click.argument("names", nargs=-1, type=click.Choice(sorted(n for n in WORKERS if n != "all")))
@click.option("--check-every", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Seconds between looks at the workers and their groups' offsets.")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=0,
              help="Serve the supervisor's Prometheus metrics (restarts, lag, stalled, lag alarm) on this port.")
def supervise(names: tuple[str, ...], check_every: float, metrics_port: int) -> None:
    """Run workers (default: the demo's nine) and start again any that exits or whose consumer stalls
    (lag and no commit for ALGO_STALL_AFTER_S). Logs: <run dir>/supervised/NAME.log. Ctrl-C stops them."""
    import signal as signals
    import threading

    from ops.demo import DEMO_WORKERS
    from ops.supervisor import Supervisor

    settings = _settings()
    supervisor = Supervisor(settings, list(names or DEMO_WORKERS), settings.run_dir / "supervised",
                            check_s=check_every, progress=lambda message: click.echo(message, err=True))
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=supervisor.metrics.registry)
    done = threading.Event()
    signals.signal(signals.SIGTERM, lambda *_: done.set())
    supervisor.start()
    click.echo(f"supervising {', '.join(supervisor.workers)} (logs under {supervisor.log_dir}); Ctrl-C stops them",
               err=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()


@cli.command()
@click.argument("topic")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N messages.")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset instead of new messages.")
@click.option("--idle-timeout", type=float, default=None, help="Stop after this many seconds without a message.")
def tail(topic: str, limit: int | None, from_beginning: bool, idle_timeout: float | None) -> None:
    """Decode any topic to JSON lines (one message per line)."""
    from streams.bus.tail import tail as run

    try:
        run(_settings(), topic, from_beginning=from_beginning, limit=limit, idle_timeout=idle_timeout)
    except KeyboardInterrupt:
        pass


@cli.command()
@click.option("--dataset", default="stocks", show_default=True)
@click.option("--symbols", cls=GreedyOption, default="", help="Symbols (default: all of the dataset).")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Keep everything running for this many seconds in all (for the dashboard), then stop.")
@click.option("--speed", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Replay speed (x real time): 0 = as fast as possible; 86400 = one day of data a second. The "
                   "trades are the same at any speed (README, \"Event time\").")
@click.option("--news", "news_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="News to replay with the bars (CSV or JSON lines: published_at,symbols,headline,summary,source,url; "
                   "default: the demo corpus, streams/analyst/data/news.csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def demo(dataset: str, symbols: str, duration: float | None, speed: float, news_path: str | None,
         as_json: bool) -> None:
    """Everything at once on bundled data: stack, provision, agents, replay, paper trading, summary."""
    from ops.demo import print_summary, run_demo

    summary = run_demo(_settings(), dataset, [s for s in symbols.replace(",", " ").split() if s], quiet=as_json,
                       duration=duration, speed=speed, news_path=news_path)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_summary(summary)


from ops.stack.cli import stack  # noqa: E402

cli.add_command(stack)

from streams.risk.cli import backtest as engine_backtest  # noqa: E402


def _backtest(agents: str | None, symbols: str, limit: int | None, **engine_options) -> None:
    if agents is None:
        if symbols or limit is not None:
            raise click.UsageError("--symbols and --limit go with --agents (the engine takes one --symbol)")
        return engine_backtest.callback(**engine_options)
    from streams.offline.cli import agents_backtest, parse_agents, print_report

    if engine_options["symbol"] is not None:
        raise click.UsageError("with --agents, name symbols with --symbols (as `algo replay` does)")
    wanted = [s for s in symbols.replace(",", " ").split() if s]
    summary = agents_backtest(_settings(), parse_agents(agents), engine_options["dataset"], engine_options["csv_path"],
                              wanted, limit)
    if engine_options["as_json"]:
        click.echo(json.dumps(summary))
    else:
        print_report(summary)


backtest = click.Command(
    "backtest", callback=_backtest, help=(engine_backtest.help or "") + (
        "\n\nWith --agents technical,quant: the streaming agents, consensus, risk checks and paper fills run offline "
        "in one process over the bars `algo replay` would publish with the same --dataset/--csv, --symbols and "
        "--limit, and print the run digest the demo prints."),
    params=[*engine_backtest.params,
            click.Option(["--agents"], default=None, help="Run these agents offline (technical,quant) instead of one "
                                                          "engine strategy."),
            GreedyOption(["--symbols"], default="", help="With --agents: symbols (space or comma separated) "
                                                         "[default: all of the dataset]."),
            click.Option(["--limit"], type=click.IntRange(min=1), default=None,
                         help="With --agents: the bars of the first N ticks, as `algo replay --limit N`.")])
cli.add_command(backtest)

from streams.bridge.cli import bridge  # noqa: E402

cli.add_command(bridge)

from streams.quant.cli import quant  # noqa: E402

cli.add_command(quant)

from streams.analyst.cli import analyst  # noqa: E402

cli.add_command(analyst)

from streams.memory.cli import memory  # noqa: E402

cli.add_command(memory)

from streams.bus.cli import deadletter  # noqa: E402

cli.add_command(deadletter)


def main() -> None:
    cli(prog_name="algo")


if __name__ == "__main__":
    main()
