"""Deterministic bar -> tick expansion used by `algo replay`.

Each source bar becomes four ticks: open, the two extremes, close. On an up bar (close >= open)
the low comes before the high (O, L, H, C); on a down bar the high comes first (O, H, L, C).
Each tick carries a quarter of the bar's volume. Daily bars are placed in the NYSE session
expressed in UTC without daylight saving (14:30, 16:40, 18:50, 21:00 UTC); bars shorter than a day
spread their ticks at 0, 1/4, 1/2 and 3/4 of the bar. Aggregating the ticks with an interval equal
to the source's gives back exactly the source bars (tested).
"""
from __future__ import annotations

import heapq
from typing import Iterator

import numpy as np

from streams.market.bars import MICROS, from_micros
from streams.market.datasets import BarSeries

DAY_US = 86400 * MICROS
DAILY_OFFSETS_US = tuple(int(h * 3600 * MICROS) for h in (14.5, 14.5 + 13 / 6, 14.5 + 26 / 6, 21.0))
TICKS_PER_BAR = 4


def source_interval_us(dates_us: np.ndarray) -> int:
    """The series' bar length: the smallest gap between consecutive bars (a day for daily data)."""
    if len(dates_us) < 2:
        return DAY_US
    gaps = np.diff(dates_us)
    gaps = gaps[gaps > 0]
    return int(gaps.min()) if len(gaps) else DAY_US


def tick_offsets_us(interval_us: int) -> tuple[int, ...]:
    if interval_us >= DAY_US:
        return DAILY_OFFSETS_US
    return tuple(interval_us * k // TICKS_PER_BAR for k in range(TICKS_PER_BAR))


def series_ticks(series: BarSeries, source: str) -> Iterator[dict]:
    """The ticks of one symbol in time order, with seq = position in the series."""
    dates_us = series.dates.astype("datetime64[us]").astype(np.int64)
    offsets = tick_offsets_us(source_interval_us(dates_us))
    seq = 0
    for i in range(len(series)):
        o, h, l, c = (float(series.open[i]), float(series.high[i]), float(series.low[i]), float(series.close[i]))
        prices = (o, l, h, c) if c >= o else (o, h, l, c)
        size = float(series.volume[i]) / TICKS_PER_BAR
        for offset, price in zip(offsets, prices):
            yield {
                "symbol": series.symbol,
                "ts": from_micros(int(dates_us[i]) + offset),
                "price": price,
                "size": size,
                "source": source,
                "seq": seq,
            }
            seq += 1


def merged_ticks(all_series: list[BarSeries], source: str) -> Iterator[dict]:
    """All symbols' ticks merged into one time-ordered stream (ties broken by symbol)."""
    streams = [series_ticks(s, source) for s in all_series]
    return heapq.merge(*streams, key=lambda t: (t["ts"], t["symbol"]))
