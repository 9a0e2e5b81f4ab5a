"""`algo backtest`: the C++ engine on a CSV or bundled data; stats as a table or one JSON object."""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from streams.errors import AlgoError, DataError
from streams.market import datasets
from streams.market import periods as market_periods
from streams.market.datasets import BarSeries

_PERCENT = {"total_return", "annualized_return", "volatility", "max_drawdown", "hit_rate", "exposure"}


def _fmt(name: str, value) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if name in _PERCENT:
        return f"{value * 100:,.2f} %"
    if name in ("final_equity", "total_fees"):
        return f"{value:,.2f}"
    return f"{value:,.4f}"


def _span(dates) -> tuple[str, str]:
    """First and last bar: days for daily bars (all at midnight), else to the second."""
    daily = bool((dates == dates.astype("datetime64[D]")).all())
    unit = "datetime64[D]" if daily else "datetime64[s]"
    return str(dates[0].astype(unit)), str(dates[-1].astype(unit))


def _plot(path: Path, dates, equity, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AlgoError("--plot needs matplotlib (pip install matplotlib, or rerun ops/bootstrap.sh)") from None
    import numpy as np

    import risk_core as rc

    dd = rc.drawdown(equity).series
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(dates, equity, color="tab:blue", linewidth=1.0)
    top.set_ylabel("equity")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.fill_between(dates, -dd * 100, 0, color="tab:red", alpha=0.4, step="post")
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    except OSError as error:
        raise AlgoError(f"cannot write the chart to {path}: {error}") from None
    finally:
        plt.close(fig)
    del np

DATASETS_DEFAULT_SYMBOL = {"stocks": "AAPL"}  # datasets with several symbols: the one used when none is named


def _one(series: list[BarSeries], symbol: str | None, origin: str) -> BarSeries:
    """The series named `symbol`, or the only one."""
    if symbol is not None:
        return datasets.select_symbols(series, [symbol], origin)[0]
    if len(series) != 1:
        names = ", ".join(s.symbol for s in series)
        raise DataError(f"{origin} has several symbols ({names}); choose one with --symbol")
    return series[0]


def read_csv(path: str | Path, symbol: str | None = None) -> BarSeries:
    """One symbol's bars from a CSV with the columns date, open, high, low, close, volume (any
    case, any order; a `symbol` column may hold several symbols, then `symbol` picks one)."""
    return _one(datasets.load_csv(path), symbol, str(path))


def load_dataset(dataset: str, symbol: str | None = None) -> BarSeries:
    """One symbol of a bundled dataset; without a symbol, DATASETS_DEFAULT_SYMBOL's or the dataset's only one."""
    symbol = symbol or DATASETS_DEFAULT_SYMBOL.get(dataset)
    return _one(datasets.load_dataset(dataset, [symbol] if symbol else None), symbol, dataset)


@click.command("backtest")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with columns date,open,high,low,close,volume (instead of bundled data).")
@click.option("--dataset", default="stocks", show_default=True, help="Bundled dataset: stocks, sp500 or nasdaq.")
@click.option("--symbol", default=None,
              help="Symbol within the dataset, or within a CSV with a symbol column [default: AAPL for stocks, "
                   "else the only symbol].")
@click.option("--strategy", type=click.Choice(["sma", "momentum", "breakout"]), default="sma", show_default=True)
@click.option("--fast", type=int, default=10, show_default=True, help="SMA fast window (bars).")
@click.option("--slow", type=int, default=50, show_default=True, help="SMA slow window (bars).")
@click.option("--lookback", type=int, default=20, show_default=True, help="Momentum/breakout window (bars).")
@click.option("--direction", type=click.Choice(["long", "short", "long_short"]), default="long", show_default=True)
@click.option("--sizing", type=click.Choice(["fixed", "vol_target"]), default="fixed", show_default=True)
@click.option("--fraction", type=float, default=1.0, show_default=True, help="Fraction of equity per unit signal.")
@click.option("--target-vol", type=float, default=0.10, show_default=True, help="Annualised vol target (vol_target).")
@click.option("--fee-bps", type=float, default=0.0, show_default=True, help="Fee on traded notional, bps.")
@click.option("--slippage-bps", type=float, default=0.0, show_default=True, help="Fill price slippage, bps.")
@click.option("--capital", type=float, default=100_000.0, show_default=True, help="Initial capital.")
@click.option("--periods-per-year", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Bars per year for annualised figures [default: inferred from the bars' spacing and calendar: "
                   "252 for daily trading days, 6240 for 24x5 hourly FX ...].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              is_flag=False, flag_value="backtest.png",
              help="Write an equity-and-drawdown chart (PNG) to this path (default backtest.png).")
def backtest(csv_path, dataset, symbol, strategy, fast, slow, lookback, direction, sizing, fraction, target_vol,
             fee_bps, slippage_bps, capital, periods_per_year, as_json, plot_path):
    """Backtest a strategy with the C++ engine (signal on bar t's close, fill at bar t+1's open)."""
    import time

    import risk_core as rc

    bars = read_csv(csv_path, symbol) if csv_path is not None else load_dataset(dataset, symbol)
    periods = market_periods.periods_per_year(bars.dates, periods_per_year)
    config = rc.make_config(strategy=strategy, fast=fast, slow=slow, lookback=lookback, direction=direction,
                            sizing=sizing, fraction=fraction, target_vol=target_vol, fee_bps=fee_bps,
                            slippage_bps=slippage_bps, initial_capital=capital, periods_per_year=periods.per_year)
    started = time.perf_counter()
    result = rc.backtest(bars.open, bars.close, high=bars.high, low=bars.low, volume=bars.volume, config=config)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    stats = result.stats.as_dict()
    source = str(csv_path) if csv_path is not None else f"{dataset}:{bars.symbol}"
    first, last = _span(bars.dates)
    if plot_path is not None:
        _plot(plot_path, bars.dates, result.equity, f"{source}  {strategy}  ({first} .. {last})")
    if as_json:
        payload = {
            "source": source, "symbol": bars.symbol, "bars": len(bars), "start": first, "end": last,
            "strategy": strategy, "params": {"fast": fast, "slow": slow, "lookback": lookback,
                                             "direction": direction, "sizing": sizing, "fee_bps": fee_bps,
                                             "slippage_bps": slippage_bps, "initial_capital": capital},
            **stats,
            **periods.as_dict(),
            "trades": stats["num_trades"],
            "elapsed_ms": round(elapsed_ms, 3),
        }
        if plot_path is not None:
            payload["plot"] = str(plot_path)
        click.echo(json.dumps(payload))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"backtest {source} ({len(bars):,} bars, {first} .. {last})")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for name, value in stats.items():
        table.add_row(name, _fmt(name, value))
    console = Console()
    console.print(table)
    console.print(f"periods per year: {periods.basis}", soft_wrap=True)
    console.print(f"engine time {elapsed_ms:.3f} ms" + (f"; chart written to {plot_path}" if plot_path else ""))
