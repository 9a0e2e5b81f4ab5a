"""Real OHLCV data that ships offline inside installed wheels, and OHLCV CSVs (README.md, "Replay:
bars to ticks, and back"). Persisted bars (Postgres market_data) are read by streams.market.store.

Datasets:
  stocks  bokeh-sampledata's stocks.csv.gz: AAPL, IBM, MSFT, GOOG, FB daily, 2000-2013 (public domain)
  sp500   arch's sp500.csv.gz: S&P 500 index daily, 1999-2018 (symbol SP500)
  nasdaq  arch's nasdaq.csv.gz: NASDAQ Composite daily, 1999-2018 (symbol NASDAQ)
Prices are the files' raw (unadjusted) OHLC.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from streams.errors import DataError

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class BarSeries:
    """One symbol's bars, oldest first; `dates` are UTC bar starts as datetime64[us]."""

    symbol: str
    dates: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.dates)


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package} is not installed; run ops/bootstrap.sh")
    return Path(list(spec.submodule_search_locations)[0], *parts)


def frame_to_series(frame: pd.DataFrame, symbol: str, origin: str) -> BarSeries:
    frame = frame.sort_values("date").drop_duplicates("date", keep="last")
    if frame.empty:
        raise DataError(f"{origin}: no rows for {symbol}")
    values = {}
    for column in OHLCV:
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(numbers) | (numbers < 0) | ((numbers == 0) & (column != "volume"))
        if bad.any():
            row = int(np.argmax(bad))
            value, when = frame[column].iloc[row], frame["date"].iloc[row]
            shown = repr(value) if isinstance(value, str) else float(numbers[row])
            raise DataError(
                f"{origin}: {symbol} row for {when.date() if when == when.normalize() else when.isoformat()} has a bad "
                f"{column} ({shown}); prices must be positive numbers, volume >= 0"
            )
        values[column] = numbers
    inconsistent = (values["high"] < values["low"]) | (values["high"] < np.maximum(values["open"], values["close"])) | (
        values["low"] > np.minimum(values["open"], values["close"])
    )
    if inconsistent.any():
        row = int(np.argmax(inconsistent))
        raise DataError(f"{origin}: {symbol} row for {frame['date'].iloc[row].date()} has high/low outside open/close")
    dates = frame["date"].dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return BarSeries(symbol, dates, **values)


def load_csv(path: str | Path, symbol: str | None = None) -> list[BarSeries]:
    """A CSV with columns date,open,high,low,close,volume (case-insensitive), optionally symbol."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{path}: not a readable CSV ({error})") from error
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("date",) + OHLCV if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; need date,open,high,low,close,volume")
    try:
        frame["date"] = pd.to_datetime(frame["date"], utc=True, format="mixed")
    except (ValueError, TypeError) as error:
        raise DataError(f"{path}: unparseable date ({error})") from error
    if "symbol" in frame.columns and symbol is None:
        return [frame_to_series(group, str(name), str(path)) for name, group in frame.groupby("symbol", sort=True)]
    return [frame_to_series(frame, symbol or path.name.split(".")[0].upper(), str(path))]


def _load_stocks() -> list[BarSeries]:
    path = _package_file("bokeh_sampledata", "_data", "stocks.csv.gz")
    frame = pd.read_csv(path).rename(columns=str.lower).rename(columns={"ticker": "symbol"})
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return [frame_to_series(group, str(name), path.name) for name, group in frame.groupby("symbol", sort=True)]


def _load_arch(name: str, symbol: str) -> list[BarSeries]:
    path = _package_file("arch", "data", name, f"{name}.csv.gz")
    frame = pd.read_csv(path).rename(columns=str.lower)
    frame["date"] = pd.to_datetime(frame["date"], utc=True, format="%m/%d/%Y")
    return [frame_to_series(frame, symbol, path.name)]


DATASETS = {
    "stocks": _load_stocks,
    "sp500": lambda: _load_arch("sp500", "SP500"),
    "nasdaq": lambda: _load_arch("nasdaq", "NASDAQ"),
}


def load_dataset(name: str, symbols: list[str] | None = None) -> list[BarSeries]:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or pass --csv PATH")
    series = DATASETS[name]()
    return select_symbols(series, symbols, name)


def select_symbols(series: list[BarSeries], symbols: list[str] | None, origin: str) -> list[BarSeries]:
    if not symbols:
        return series
    wanted = [s.upper() for s in symbols]
    available = {s.symbol: s for s in series}
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise DataError(f"{origin} has no symbol(s) {', '.join(unknown)}; it has {', '.join(available)}")
    return [available[s] for s in wanted]


def load_bars(dataset: str, symbol: str) -> BarSeries:
    """One symbol of a bundled dataset."""
    return load_dataset(dataset, [symbol])[0]
