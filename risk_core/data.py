"""Bars for `algo backtest`: a thin adapter over streams.datasets, the project's one reader of
OHLCV CSVs and bundled datasets (streams is always installed alongside risk_core).

Its DataError becomes RiskCoreError with the same message, so `algo backtest` reports a bad
file or an unknown symbol as one line like any other risk_core error.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streams import datasets as _datasets
from streams.datasets import BarSeries
from streams.errors import DataError

from risk_core.errors import RiskCoreError

Bars = BarSeries  # symbol, dates (datetime64[us]), open, high, low, close, volume (float64 arrays)
DATASETS = tuple(_datasets.DATASETS)
DEFAULT_SYMBOL = {"stocks": "AAPL"}  # datasets with several symbols: the one used when none is named

__all__ = ["Bars", "DATASETS", "DEFAULT_SYMBOL", "load_dataset", "read_csv"]


@contextmanager
def _as_risk_core_error() -> Iterator[None]:
    try:
        yield
    except DataError as error:
        raise RiskCoreError(str(error)) from None


def _one(series: list[BarSeries], symbol: str | None, origin: str) -> BarSeries:
    """The series named `symbol`, or the only one."""
    if symbol is not None:
        return _datasets.select_symbols(series, [symbol], origin)[0]
    if len(series) != 1:
        names = ", ".join(s.symbol for s in series)
        raise DataError(f"{origin} has several symbols ({names}); choose one with --symbol")
    return series[0]


def read_csv(path: str | Path, symbol: str | None = None) -> Bars:
    """One symbol's bars from a CSV with the columns date, open, high, low, close, volume (any
    case, any order; a `symbol` column may hold several symbols, then `symbol` picks one)."""
    with _as_risk_core_error():
        return _one(_datasets.load_csv(path), symbol, str(path))


def load_dataset(dataset: str, symbol: str | None = None) -> Bars:
    """One symbol of a bundled dataset (DATASETS); without a symbol, DEFAULT_SYMBOL's or the
    dataset's only one."""
    symbol = symbol or DEFAULT_SYMBOL.get(dataset)
    with _as_risk_core_error():
        return _one(_datasets.load_dataset(dataset, [symbol] if symbol else None), symbol, dataset)
