"""`algo quant train|evaluate|register|versions`: the Quant policy from the command line."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import click
import numpy as np


def _settings():
    from streams.settings import get_settings

    return get_settings()


def _load(csv_path: str | None, dataset: str | None, symbols: list[str], from_db: bool, interval: str | None):
    """(list of BarSeries, source label) from exactly one of --csv, --dataset, --from-db."""
    from streams.market.datasets import load_csv, load_dataset, select_symbols
    from streams.market.store import load_market_data

    if sum(bool(x) for x in (csv_path, dataset, from_db)) > 1:
        raise click.UsageError("use one of --csv, --dataset and --from-db")
    if csv_path:
        return select_symbols(load_csv(csv_path), symbols, csv_path), f"csv:{os.path.basename(csv_path)}"
    if from_db:
        settings = _settings()
        return load_market_data(settings.database_url, symbols, interval or settings.bar_interval), "postgres:market_data"
    name = dataset or "sp500"
    return load_dataset(name, symbols), f"dataset:{name}"


def _date(text: str | None, flag: str) -> np.datetime64 | None:
    if not text:
        return None
    try:
        return np.datetime64(datetime.strptime(text, "%Y-%m-%d"), "us")
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date like 2012-12-31", param_hint=flag) from None


def _clip(series, start, end):
    from streams.market.datasets import BarSeries

    out = []
    for s in series:
        keep = np.ones(len(s), dtype=bool)
        if start is not None:
            keep &= s.dates >= start
        if end is not None:
            keep &= s.dates <= end
        out.append(BarSeries(s.symbol, s.dates[keep], s.open[keep], s.high[keep], s.low[keep], s.close[keep],
                             s.volume[keep]))
    return [s for s in out if len(s)]


def _data_options(func):
    for option in reversed([
        click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
                     help="OHLCV CSV: date,open,high,low,close,volume[,symbol]."),
        click.option("--dataset", default=None, help="Bundled dataset: sp500 (default), nasdaq or stocks."),
        click.option("--from-db", is_flag=True, help="Bars the pipeline persisted in Postgres (market_data)."),
        click.option("--interval", default=None, help="Bar interval with --from-db (default BAR_INTERVAL)."),
    ]):
        func = option(func)
    return func


@click.group()
def quant() -> None:
    """The Quant agent's PPO policy: train, evaluate, register, list versions."""


@quant.command()
@_data_options
@click.option("--symbols", default="", help="Symbols to train on, comma or space separated (default: all).")
@click.option("--start", default=None, help="First bar date to train on (YYYY-MM-DD).")
@click.option("--end", default=None, help="Last bar date to train on (YYYY-MM-DD); keep later data for testing.")
@click.option("--timesteps", type=click.IntRange(min=256), default=200_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=50_000, show_default=True,
              help="Save a checkpoint every N steps (0: none).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the model (default: $ALGO_MODEL_DIR/<version>).")
@click.option("--register/--no-register", default=True, show_default=True,
              help="Record the model as a version in Postgres (the quant agent serves the latest registered).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def train(csv_path, dataset, from_db, interval, symbols, start, end, timesteps, seed, checkpoint_every, out_dir,
          register, as_json):
    """Train a PPO policy on historical bars; save it with its metadata; register it as a version."""
    from streams.quant.train import train_and_register

    wanted = [s for s in symbols.replace(",", " ").split() if s]
    bars, source = _load(csv_path, dataset, wanted, from_db, interval)
    bars = _clip(bars, _date(start, "--start"), _date(end, "--end"))
    if not as_json:
        click.echo(f"training PPO (seed {seed}, {timesteps:,} steps) on {', '.join(b.symbol for b in bars)} "
                   f"from {source}")
    summary = train_and_register(_settings(), bars, source, timesteps=timesteps, seed=seed,
                                 checkpoint_every=checkpoint_every, out_dir=Path(out_dir) if out_dir else None,
                                 register=register, progress_bar=not as_json)
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    click.echo(f"model {summary['version']} saved to {summary['path']}"
               + (" and registered in Postgres (model_versions)" if summary["registered"] else " (not registered)"))
    for symbol, figures in summary["in_sample"].items():
        click.echo(f"  in-sample {symbol}: Sharpe {figures['sharpe']:.2f}, return {figures['total_return']:+.1%}, "
                   f"max drawdown {figures['max_drawdown']:.1%}, {figures['fills']} fills")


@quant.command()
@_data_options
@click.option("--symbol", default=None, help="The symbol to evaluate when the data holds several.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--folds", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--train-fraction", type=click.FloatRange(0.1, 0.9), default=0.5, show_default=True,
              help="Share of the bars in the first training set; the rest is split into the test folds.")
@click.option("--timesteps", type=click.IntRange(min=256), default=50_000, show_default=True,
              help="PPO steps per fold and seed.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="quant-results", show_default=True,
              help="Where the results JSON (with the curves) and the equity chart go.")
@click.option("--periods-per-year", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Bars per year for annualised figures [default: inferred from the bars' spacing and calendar: "
                   "252 for daily trading days, 6240 for 24x5 hourly FX ...].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (per-seed and baseline figures).")
def evaluate(csv_path, dataset, from_db, interval, symbol, seeds, folds, train_fraction, timesteps, out_dir,
             periods_per_year, as_json):
    """Walk-forward, out-of-sample: PPO over several seeds vs buy-and-hold and SMA crossover."""
    from streams.quant.evaluate import EvaluationConfig, evaluate as run, format_table, write_outputs

    bars, source = _load(csv_path, dataset, [symbol] if symbol else [], from_db, interval)
    if len(bars) > 1:
        raise click.UsageError(f"{source} holds {len(bars)} symbols ({', '.join(b.symbol for b in bars)}): "
                               "pick one with --symbol")
    config = EvaluationConfig(seeds=seeds, folds=folds, train_fraction=train_fraction, timesteps=timesteps,
                              periods_per_year=periods_per_year)
    report = run(bars[0], config=config, source=source,
                 progress=(lambda _: None) if as_json else (lambda line: click.echo(f"evaluate: {line}")))
    stem = f"quant-evaluate-{bars[0].symbol.lower()}"
    results, chart = write_outputs(report, Path(out_dir), stem)
    if as_json:
        click.echo(json.dumps({**{k: v for k, v in report.items() if k != "curves"},
                               "results_file": str(results), "chart": str(chart)}, default=float))
        return
    for line in format_table(report):
        click.echo(line)
    click.echo(f"results: {results}\nchart:   {chart}")


@quant.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def register_command(directory):
    """Register a saved model directory (model.safetensors + metadata.json) as the current version
    (an already registered one becomes current again: a rollback)."""
    from streams.quant import model as qm

    policy = qm.QuantPolicy.load(directory)
    artifact = qm.read_saved(directory)[1]
    if qm.version_of(artifact) != policy.version:
        raise click.ClickException(f"{directory}: {qm.WEIGHTS_FILE} does not match its metadata's version "
                                   f"{policy.version}")
    click.echo(f"registered {qm.register(_settings(), artifact, policy.metadata)}")


@quant.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def versions(as_json):
    """Registered Quant model versions, current first (the agent serves the current one unless pinned)."""
    from streams.quant import model as qm

    rows = qm.list_versions(_settings())
    if as_json:
        click.echo(json.dumps({"versions": rows}, default=str))
        return
    if not rows:
        click.echo("no quant model registered yet: run `algo quant train`")
    for row in rows:
        click.echo(f"{row['version']}  registered {row['registered_at']:%Y-%m-%d %H:%M:%S}  seed {row['seed']}  {row['data_source']}  "
                   f"{row['bars']:,} bars  {row['artifact_bytes'] / 1024:.0f} KiB")
