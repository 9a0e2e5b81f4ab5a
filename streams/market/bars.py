"""Tick -> OHLCV bar aggregation over tumbling event-time windows, as pure functions on plain dicts.

The state per symbol is the open bar (a JSON-able dict kept in a Faust table). A tick in the open
bar's window updates it; a tick in any other window closes the open bar (it is returned for
publishing) and opens a new one. A tick from an *earlier* window therefore starts over, which is
what a replay does; per-symbol order is guaranteed by the symbol key, so live ticks never go back.
Ticks re-delivered after a crash (same source, seq not above the last one seen in the window) are
ignored, so at-least-once delivery does not double-count volume.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

from streams.errors import DataError

MICROS = 1_000_000


def to_micros(ts: datetime | int) -> int:
    if isinstance(ts, int):
        return ts
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    delta = ts - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * MICROS + delta.microseconds


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // MICROS, tz=timezone.utc).replace(microsecond=us % MICROS)


def window_start_us(ts_us: int, interval_s: int) -> int:
    return ts_us - ts_us % (interval_s * MICROS)


def open_bar(tick: dict, interval: str, interval_s: int) -> dict:
    price, size = float(tick["price"]), float(tick["size"])
    return {
        "symbol": tick["symbol"],
        "interval": interval,
        "start_us": window_start_us(to_micros(tick["ts"]), interval_s),
        "open": price,
        "high": price,
        "low": price,
        "close": price,
        "volume": size,
        "tick_count": 1,
        "source": tick.get("source", ""),
        "last_seq": int(tick.get("seq", -1)),
    }


def check_tick(tick: dict) -> dict:
    """The tick, or a DataError naming what makes it unusable: a bar built from it would be wrong
    for the rest of its window, so it is refused before it touches one."""
    price, size = tick["price"], tick["size"]
    if not math.isfinite(price) or price <= 0:
        raise DataError(f"tick {tick['symbol']}@{tick['ts']}: price {price!r} is not a positive number")
    if not math.isfinite(size) or size < 0:
        raise DataError(f"tick {tick['symbol']}@{tick['ts']}: size {size!r} is not a non-negative number")
    if not tick["symbol"].strip():
        raise DataError(f"tick @{tick['ts']}: the symbol is empty")
    return tick


def apply_tick(state: dict | None, tick: dict, interval: str, interval_s: int) -> tuple[dict, list[dict]]:
    """Returns the new open-bar state and the bars this tick closed (zero or one)."""
    start = window_start_us(to_micros(tick["ts"]), interval_s)
    if state is None or state["start_us"] != start or state["interval"] != interval:
        closed = [bar_record(state)] if state is not None else []
        return open_bar(tick, interval, interval_s), closed
    seq = int(tick.get("seq", -1))
    if tick.get("source", "") == state["source"] and 0 <= seq <= state["last_seq"]:
        return state, []  # a re-delivered tick
    price, size = float(tick["price"]), float(tick["size"])
    updated = dict(state)
    updated["high"] = max(state["high"], price)
    updated["low"] = min(state["low"], price)
    updated["close"] = price
    updated["volume"] = state["volume"] + size
    updated["tick_count"] = state["tick_count"] + 1
    updated["source"] = tick.get("source", "")
    updated["last_seq"] = max(seq, state["last_seq"]) if updated["source"] == state["source"] else seq
    return updated, []


def bar_record(state: dict) -> dict:
    """The Bar message (schemas/avro/Bar.avsc) for an open-bar state."""
    return {
        "symbol": state["symbol"],
        "interval": state["interval"],
        "ts": from_micros(state["start_us"]),
        "open": state["open"],
        "high": state["high"],
        "low": state["low"],
        "close": state["close"],
        "volume": state["volume"],
        "tick_count": state["tick_count"],
    }


def bar_version(state: dict) -> tuple[int, int]:
    """Identifies what an emitted bar contained, so an idle flush is not repeated needlessly."""
    return state["start_us"], state["tick_count"]
