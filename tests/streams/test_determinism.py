"""Integration: the same bars give the same trades. Three replays of one slice through the real workers
(bars, technical, quant, consensus, risk, broker) on the real stack, twice as fast as they go and once
paced, give identical decisions, verdicts, orders, fills and final book, row by row; and the offline
run of the same agents (`algo backtest --agents technical,quant`) gives the same rows."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from ops.demo import (remove_run_state, run_book, run_environment, run_records, start_from_the_end, start_workers,
                      stop_workers, topic_ends, wait_ready)
from streams.bus import digest as run_digest
from streams.market.datasets import BarSeries, load_dataset
from streams.market.replay import replay
from streams.offline.pipeline import run_offline
from streams.settings import Settings
from tests import fixtures

pytestmark = pytest.mark.integration

WORKERS = ("bars", "technical", "quant", "consensus", "risk", "broker")
BARS_PER_SYMBOL = 90
SOURCE = "replay:stocks"


def slice_of(series: BarSeries, start, end) -> BarSeries:
    keep = (series.dates >= start) & (series.dates <= end)
    return BarSeries(series.symbol, series.dates[keep], series.open[keep], series.high[keep], series.low[keep],
                     series.close[keep], series.volume[keep])


@pytest.fixture(scope="module")
def bars() -> list[BarSeries]:
    """AAPL, GOOG and MSFT over the same span, to one end. GOOG lists in August 2004, after the others'
    first bars: the risk agent must wait for a symbol it has not seen yet. (A symbol whose bars end
    before the others' is the case event time cannot order: README, "Event time".)"""
    import numpy as np

    aapl, goog, msft = load_dataset("stocks", ["AAPL", "GOOG", "MSFT"])
    start = np.datetime64("2004-07-01")
    end = aapl.dates[np.flatnonzero(aapl.dates >= start)[BARS_PER_SYMBOL - 1]]
    return [slice_of(s, start, end) for s in (aapl, goog, msft)]


@pytest.fixture(scope="module")
def settings(provisioned) -> Settings:
    return fixtures.with_small_policy(provisioned, "determinism")


def stream_run(settings: Settings, series: list[BarSeries], speed: float) -> dict[str, list]:
    """One replay through fresh workers (their own app id and account); the run's rows."""
    account = f"det-{uuid.uuid4().hex[:8]}"
    env = {**run_environment(settings, account), "BAR_IDLE_CLOSE_S": "1"}
    run = Settings.from_env({**os.environ, **env})
    starts = topic_ends(settings)
    start_from_the_end(run, WORKERS)
    workers = start_workers(settings, WORKERS, env=env)
    try:
        wait_ready(settings, workers, WORKERS, timeout=180)
        replay(settings, series, SOURCE, speed=speed, show_progress=False)
        expected = sum(len(s) for s in series)
        deadline, last, stable = time.monotonic() + 240, None, 0
        while stable < 3:  # every bar decided and judged, then nothing changes for three polls
            assert time.monotonic() < deadline, f"the run did not settle: {last and len(last[0])} decisions"
            time.sleep(2)
            records = run_records(settings, starts, account)
            now = (records["consensus.decisions"], records["risk.verdicts"], records["orders"], records["fills"],
                   run_book(settings, account))
            done = len(now[0]) == expected and len(now[1]) == expected
            stable = stable + 1 if done and last is not None and digest_of(*now) == digest_of(*last) else 0
            last = now
            assert not any(w.poll() is not None for w in workers), "a worker exited"
    finally:
        stop_workers(workers)
        remove_run_state(run)
    return rows(*last)


def digest_of(decisions, verdicts, orders, fills, book) -> str:
    return run_digest.trading_digest(decisions, verdicts, orders, fills, book)["digest"]


rows = run_digest.trading_rows


def assert_same_rows(expected: dict[str, list], got: dict[str, list], label: str) -> None:
    for part in ("decisions", "verdicts", "orders", "fills", "book"):
        a, b = expected[part], got[part]
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
        assert a == b, (f"{label}: {part} differ ({len(a)} vs {len(b)} rows; first difference at row {first}: "
                        f"{a[first] if first is not None else a[len(b):][:1]} vs {b[first] if first is not None else b[len(a):][:1]})")


def test_replays_at_any_speed_give_the_same_trades_and_match_the_offline_run(settings, bars):
    first = stream_run(settings, bars, speed=0)
    assert len(first["decisions"]) == sum(len(s) for s in bars)
    assert first["orders"] and first["fills"], "the slice trades (else the comparison proves little)"
    assert {row[0] for row in first["decisions"]} == {"AAPL", "GOOG", "MSFT"}
    assert any(v[0] == "quant" for d in first["decisions"] for v in d[5])

    assert_same_rows(first, stream_run(settings, bars, speed=0), "second full-speed replay")
    # paced: about 15 s of replay for the slice's ~4 months (the bar agent closes idle bars after 1 s; a symbol
    # gets a tick every ~0.04 s here)
    assert_same_rows(first, stream_run(settings, bars, speed=1_000_000), "paced replay")

    from streams.quant import model as quant_model

    offline = run_offline(settings, bars, SOURCE, ("technical", "quant"), quant_model.fetch(settings))
    assert_same_rows(first, rows(offline.decisions, offline.verdicts, offline.orders, offline.fills,
                                 {**offline.book, "positions": offline.book["positions"]}), "offline run")
