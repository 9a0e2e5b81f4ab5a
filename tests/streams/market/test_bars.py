import re

import numpy as np
import pytest

from streams.errors import DataError
from streams.market.bars import apply_tick, bar_record, check_tick, from_micros, to_micros, window_start_us
from streams.market.datasets import BarSeries, load_dataset
from streams.market.ticks import DAILY_OFFSETS_US, merged_ticks, series_ticks
from tests.fixtures import T0, tick


def aggregate(ticks, interval="1d", seconds=86400):
    states, bars = {}, []
    for t in ticks:
        states[t["symbol"]], closed = apply_tick(states.get(t["symbol"]), t, interval, seconds)
        bars += closed
    bars += [bar_record(s) for s in states.values()]  # what the idle flush publishes
    return bars


def test_micros_roundtrip():
    assert from_micros(to_micros(T0)) == T0
    assert window_start_us(to_micros(T0), 86400) == to_micros(T0.replace(hour=0, minute=0))


def test_ohlcv_of_one_window():
    ticks = [tick(price=p, size=s, seq=i) for i, (p, s) in enumerate([(10, 1), (12, 2), (9, 3), (11, 4)])]
    [bar] = aggregate(ticks)
    assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"], bar["tick_count"]) == (10, 12, 9, 11, 10, 4)
    assert bar["ts"] == T0.replace(hour=0, minute=0)


def test_a_later_window_closes_the_open_bar():
    state, closed = apply_tick(None, tick(price=10, seq=0), "1h", 3600)
    state, closed = apply_tick(state, tick(price=11, seq=1, ts=T0.replace(minute=59)), "1h", 3600)
    assert closed == []
    state, closed = apply_tick(state, tick(price=12, seq=2, ts=T0.replace(hour=15, minute=30)), "1h", 3600)
    assert [b["close"] for b in closed] == [11]
    assert state["open"] == 12 and state["tick_count"] == 1


def test_redelivered_tick_is_not_counted_twice():
    state, _ = apply_tick(None, tick(seq=0, size=5), "1d", 86400)
    state, _ = apply_tick(state, tick(seq=1, size=5), "1d", 86400)
    again, closed = apply_tick(state, tick(seq=1, size=5), "1d", 86400)
    assert again == state and closed == []
    other_source, _ = apply_tick(state, tick(seq=1, size=5, source="bridge"), "1d", 86400)
    assert other_source["volume"] == 15


def test_an_earlier_window_starts_over_like_a_replay():
    state, _ = apply_tick(None, tick(ts=T0.replace(day=6)), "1d", 86400)
    state, closed = apply_tick(state, tick(ts=T0, price=50, seq=0), "1d", 86400)
    assert len(closed) == 1 and state["open"] == 50 and state["tick_count"] == 1


def test_replayed_ticks_aggregate_back_to_the_source_bars():
    source = load_dataset("stocks", ["AAPL", "MSFT"])
    bars = aggregate(merged_ticks(source, "replay:stocks"))
    by_symbol = {s.symbol: s for s in source}
    assert len(bars) == sum(len(s) for s in source)
    for symbol, series in by_symbol.items():
        mine = sorted((b for b in bars if b["symbol"] == symbol), key=lambda b: b["ts"])
        assert [b["ts"].replace(tzinfo=None) for b in mine] == list(series.dates.astype("datetime64[us]").tolist())
        for field in ("open", "high", "low", "close", "volume"):
            assert np.array_equal([b[field] for b in mine], getattr(series, field)), field


def test_ticks_are_deterministic_and_ordered():
    source = load_dataset("stocks", ["IBM", "GOOG"])
    first = list(merged_ticks(source, "x"))
    assert first == list(merged_ticks(source, "x"))
    assert all(a["ts"] <= b["ts"] for a, b in zip(first, first[1:]))
    assert len(first) == 4 * sum(len(s) for s in source)


def test_up_bar_visits_low_before_high_and_down_bar_high_first():
    dates = np.array(["2001-01-02", "2001-01-03"], dtype="datetime64[us]")
    series = BarSeries("X", dates, np.array([10.0, 10.0]), np.array([12.0, 12.0]), np.array([9.0, 9.0]),
                       np.array([11.0, 9.5]), np.array([400.0, 8.0]))
    ticks = list(series_ticks(series, "x"))
    assert [t["price"] for t in ticks] == [10, 9, 12, 11, 10, 12, 9, 9.5]
    assert [t["size"] for t in ticks[:4]] == [100.0] * 4
    assert [to_micros(t["ts"]) - to_micros(ticks[0]["ts"].replace(hour=0, minute=0)) for t in ticks[:4]] == list(DAILY_OFFSETS_US)


@pytest.mark.parametrize("interval,seconds", [("1h", 3600), ("15m", 900)])
def test_intraday_intervals_split_a_daily_bar(interval, seconds):
    source = load_dataset("stocks", ["AAPL"])
    bars = aggregate(list(series_ticks(source[0], "x"))[:40], interval, seconds)
    assert len(bars) == 40  # every tick of a daily bar falls in its own intraday window


@pytest.mark.parametrize("field, value, reason", [
    ("price", float("nan"), "price nan is not a positive number"),
    ("price", float("inf"), "price inf is not a positive number"),
    ("price", -1.5, "price -1.5 is not a positive number"),
    ("price", 0.0, "price 0.0 is not a positive number"),
    ("size", -4.0, "size -4.0 is not a non-negative number"),
    ("size", float("nan"), "size nan is not a non-negative number"),
    ("symbol", "  ", "the symbol is empty"),
])
def test_a_tick_no_bar_can_use_is_refused_with_the_reason(field, value, reason):
    with pytest.raises(DataError, match=re.escape(reason)):
        check_tick(tick(**{field: value}))


def test_a_usable_tick_passes_unchanged():
    usable = tick(size=0.0)
    assert check_tick(usable) is usable
