"""Bars for `algo backtest`: a CSV (date,open,high,low,close,volume) or a bundled dataset.

Bundled data comes from streams.datasets.load_bars when that module is available, otherwise
from this module's own reader of the same files (bokeh-sampledata's stocks, arch's S&P 500).
"""
from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from risk_core.errors import RiskCoreError

DATASETS = ("stocks", "sp500")


@dataclass(frozen=True)
class Bars:
    symbol: str
    dates: np.ndarray  # datetime64[D]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)


def read_csv(path: str | Path, symbol: str | None = None) -> Bars:
    """A CSV with a header and the columns date, open, high, low, close, volume (any order,
    any case; extra columns are ignored). Rows are sorted by date."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise RiskCoreError(f"CSV not found: {p}")
    try:
        df = pd.read_csv(p)
    except Exception as error:  # pandas raises many types for malformed files
        raise RiskCoreError(f"cannot read {p}: {error}") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("date", "open", "high", "low", "close", "volume") if c not in df.columns]
    if missing:
        raise RiskCoreError(f"{p}: missing column(s) {', '.join(missing)} (need date,open,high,low,close,volume)")
    if df.empty:
        raise RiskCoreError(f"{p}: no rows")
    try:
        dates = pd.to_datetime(df["date"], format="mixed")
    except (ValueError, TypeError) as error:
        raise RiskCoreError(f"{p}: unreadable dates ({error})") from None
    df = df.assign(date=dates).sort_values("date", kind="stable")
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            row = int(np.argmax(np.isnan(values)))
            raise RiskCoreError(f"{p}: column {name} has a missing or non-numeric value in data row {row + 1}")
        cols[name] = values
    return Bars(symbol or p.stem, df["date"].to_numpy().astype("datetime64[D]"), **cols)


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RiskCoreError(f"package {package} is not installed; run ops/bootstrap.sh")
    return Path(list(spec.submodule_search_locations)[0], *parts)


def _own_reader(dataset: str, symbol: str) -> Bars:
    import pandas as pd

    if dataset == "stocks":
        path = _package_file("bokeh_sampledata", "_data", "stocks.csv.gz")
        with gzip.open(path, "rt") as fh:
            df = pd.read_csv(fh)
        df = df[df["Ticker"] == symbol]
        if df.empty:
            raise RiskCoreError(f"dataset stocks has no symbol {symbol!r} (AAPL, IBM, MSFT, GOOG, FB)")
        dates = pd.to_datetime(df["Date"])
    elif dataset == "sp500":
        path = _package_file("arch", "data", "sp500", "sp500.csv.gz")
        with gzip.open(path, "rt") as fh:
            df = pd.read_csv(fh)
        dates = pd.to_datetime(df["Date"], format="%m/%d/%Y")
    else:
        raise RiskCoreError(f"unknown dataset {dataset!r} (one of {', '.join(DATASETS)})")
    order = np.argsort(dates.to_numpy(), kind="stable")
    get = lambda c: df[c].to_numpy(dtype=np.float64)[order]  # noqa: E731
    return Bars(symbol, dates.to_numpy()[order].astype("datetime64[D]"), get("Open"), get("High"), get("Low"),
                get("Close"), get("Volume"))


def load_dataset(dataset: str, symbol: str) -> Bars:
    """One symbol of a bundled dataset (streams.datasets when present, else our own reader)."""
    try:
        from streams.datasets import load_bars
    except ImportError:
        return _own_reader(dataset, symbol)
    from streams.errors import AlgoError

    try:
        series = load_bars(dataset, symbol)
    except AlgoError as error:
        raise RiskCoreError(str(error)) from None
    return Bars(series.symbol, np.asarray(series.dates).astype("datetime64[D]"), series.open, series.high,
                series.low, series.close, series.volume)
