"""`algo memory record`: cache.access -> a trace CSV with each access's symbol volatility as of then."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest

from streams.bus.codecs import CodecRegistry
from streams.errors import DataError
from streams.memory import trace
from streams.memory.keys import cache_key
from streams.memory.record import Access, record_trace, volatility_as_of
from streams.memory.tiering import volatility
from tests.kafka_tools import produce

CLOSES = list(100 * np.exp(np.cumsum(np.random.default_rng(11).normal(0, 0.02, 30))))


def test_volatility_counts_only_bars_written_before_the_access() -> None:
    # bar i is written at time 100 + i; accesses at 50 (no bars yet), 110.5 (bars 0..10), 1000 (all)
    bars = {"AAPL": [(float(i), close, 100.0 + i) for i, close in enumerate(CLOSES)]}
    accesses = [Access(1000.0, "bars:AAPL:1d", 10, "AAPL"), Access(50.0, "bars:AAPL:1d", 10, "AAPL"),
                Access(110.5, "bars:AAPL:1d", 10, "AAPL"), Access(110.7, "positions:paper", 5, None),
                Access(120.0, "bars:ZZZ:1d", 10, "ZZZ")]
    vols = volatility_as_of(accesses, bars)
    assert vols[1] == 0.0 and vols[3] == 0.0 and vols[4] == 0.0
    assert vols[2] == pytest.approx(volatility(CLOSES[:11]))
    assert vols[0] == pytest.approx(volatility(CLOSES))


def test_a_bar_written_late_takes_its_place_by_bar_time() -> None:
    # the oldest bar arrives last: it goes first in the series, not last
    bars = {"X": [(1.0, 100.0, 1.0), (2.0, 110.0, 2.0), (3.0, 99.0, 3.0), (0.0, 50.0, 4.0)]}
    [before, after] = volatility_as_of([Access(3.5, "k", 1, "X"), Access(9.0, "k", 1, "X")], bars)
    assert before == pytest.approx(volatility([100.0, 110.0, 99.0]))
    assert after == pytest.approx(volatility([50.0, 100.0, 110.0, 99.0]))


def test_bad_arguments_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="--limit"):
        record_trace(object(), tmp_path / "t.csv", limit=0)
    with pytest.raises(DataError, match="--idle-timeout"):
        record_trace(object(), tmp_path / "t.csv", idle_timeout_s=0)


@pytest.mark.integration
def test_record_writes_a_trace_that_read_trace_accepts(provisioned, tmp_path) -> None:
    symbol = f"RC{uuid.uuid4().hex[:6].upper()}"
    now = datetime.now(timezone.utc)
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        for i, close in enumerate(CLOSES):  # written over the last 30 minutes, one a minute
            conn.execute("INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume, tick_count, "
                         "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, 1, %s)",
                         (symbol, provisioned.bar_interval, datetime(2001, 1, 1, tzinfo=timezone.utc) + timedelta(days=i),
                          close, close, close, close, now - timedelta(minutes=30 - i)))
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("cache.access")
    out = tmp_path / "trace.csv"
    ready, lines, result = threading.Event(), [], {}

    def progress(line: str) -> None:
        lines.append(line)
        ready.set()

    def run() -> None:
        result["summary"] = record_trace(provisioned, out, limit=None, idle_timeout_s=4, progress=progress)

    recorder = threading.Thread(target=run)
    recorder.start()
    assert ready.wait(30), "the recorder did not start"
    bars_key, other_key = cache_key("bars", symbol, "1d"), cache_key("positions", f"acct{uuid.uuid4().hex[:6]}")
    accesses = [(bars_key, now - timedelta(hours=1), 100), (other_key, now, 50), (bars_key, now + timedelta(seconds=1), 120)]
    for key, ts, size in accesses:
        record = {"key": key, "ts": ts, "op": "GET", "tier": "HOT", "size_bytes": size, "agent": "test",
                  "kind": key.split(":")[0], "latency_us": 10, "symbol": symbol if key == bars_key else None}
        produce(provisioned, "cache.access", key.encode(), codec.encode(record))
    recorder.join(60)
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM market_data WHERE symbol = %s", (symbol,))
    assert not recorder.is_alive() and "summary" in result, lines
    recorded = trace.read_trace(out)
    ours = [i for i, key_id in enumerate(recorded.ids) if recorded.keys[key_id] in (bars_key, other_key)]
    assert [recorded.keys[recorded.ids[i]] for i in ours] == [bars_key, other_key, bars_key]
    assert [int(recorded.sizes[i]) for i in ours] == [100, 50, 120]
    assert recorded.times[ours[1]] == pytest.approx(now.timestamp(), abs=1e-3)
    vols = [float(recorded.volatility[i]) for i in ours]
    # an hour ago no bar of the symbol was written; now all 30 are
    assert vols[0] == 0.0 and vols[1] == 0.0 and vols[2] == pytest.approx(volatility(CLOSES), rel=1e-5)
    assert result["summary"].requests == len(recorded)


def test_the_record_command_answers_bad_options_in_one_line(tmp_path) -> None:
    import subprocess
    import sys

    from tests.kafka_tools import ROOT

    for args, words in ((["--limit", "0"], "--limit must be at least 1"),
                        (["--idle-timeout", "-1"], "--idle-timeout must be positive"),
                        (["--limit", "many"], "many")):
        done = subprocess.run([sys.executable, "-m", "ops.cli", "memory", "record", "--out", str(tmp_path / "t.csv"),
                               *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and words in lines[0], done.stderr
