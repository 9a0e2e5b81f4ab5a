"""Fault: kill -9 the Kafka broker mid-replay, start it again, audit (issue 14, scenario 2).
(Scenario 1, each worker of the loop killed in turn, is tests/faults/test_loop_kills.py.)

The scenario publishes 100,000 ticks (50 symbols, 500 days, 4 ticks a day) with acks=all and
idempotence on, paced so that the bar and persistence workers keep up, and strikes when a fifth of
them are acknowledged: the Kafka broker gets SIGKILL and is started again 3 s later.
Audit afterwards:
- every acknowledged tick is on market.ticks exactly once (0 lost, 0 duplicated);
- market_data holds every (symbol, day) bar, whole (open, high, low, close, 4 ticks): ticks -> bars exact;
- nothing of the run was dead-lettered, and no worker crashed.
The figures go to benchmarks/results/faults.json.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from datetime import timedelta

import psycopg
import pytest

from streams.bus.codecs import CodecRegistry
from tests import fixtures
from tests.faults.harness import PacedPublisher, stop_all
from tests.faults.results import record_scenario
from tests.kafka_tools import Worker, commit_offsets, ends, read_from, wait_for
from tests.streams.test_outages import dead_letters_with_keys, started

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SYMBOLS, DAYS, TICKS_A_DAY = 50, 500, 4
RATE = 2_500  # ticks/s: about what one bar worker takes on this machine with the publisher beside it
OFFSETS = (0.0, 2.0, -1.0, 1.0)  # open, high, low, close of each day's four ticks


def price(symbol_index: int, day: int) -> float:
    return round(10.0 + day % 200 + symbol_index / 100, 2)


def kafka_pid(settings) -> int:
    from ops.stack.services import services

    pid = services(settings)["kafka"].our_pid()
    assert pid, "the stack's Kafka is not running from this run dir"
    return pid


class PacedReplay(PacedPublisher):
    """The scenario's ticks, published from a thread at RATE with delivery reports kept."""

    def __init__(self, settings, run: str):
        codec = CodecRegistry(settings.schema_registry_url).for_topic("market.ticks")
        self.symbols = [f"K{run}{i:02d}" for i in range(SYMBOLS)]
        self.day0 = fixtures.T0.replace(hour=0, minute=0)
        self.ids = [(self.symbols[s], d * TICKS_A_DAY + i) for d in range(DAYS) for s in range(SYMBOLS)
                    for i in range(TICKS_A_DAY)]
        super().__init__(settings, [("market.ticks", symbol.encode(), codec.encode(fixtures.tick(
            symbol=symbol, ts=self.day0 + timedelta(days=seq // TICKS_A_DAY, hours=seq % TICKS_A_DAY + 1),
            price=price(self.symbols.index(symbol), seq // TICKS_A_DAY) + OFFSETS[seq % TICKS_A_DAY], size=1.0,
            seq=seq))) for symbol, seq in self.ids], RATE)

    def start_and_wait_for_a_fifth(self) -> None:
        self.start_and_wait_for(0.2)

    def expected_bars(self) -> dict[tuple, tuple]:
        return {(self.symbols[s], self.day0 + timedelta(days=d)): (*(round(price(s, d) + o, 6) for o in OFFSETS), 4)
                for s in range(SYMBOLS) for d in range(DAYS)}


def audit(settings, replay: PacedReplay, starts, run: str) -> dict:
    """What reached market.ticks and market_data of what was acknowledged (waits for the bars)."""
    on_topic, ours = Counter(), set(replay.symbols)
    for _, tick in read_from(settings, starts, timeout=120):
        if tick["symbol"] in ours:
            on_topic[(tick["symbol"], tick["seq"])] += 1
    acked = {index for _, index in replay.acknowledged}
    expected = replay.expected_bars()

    def whole() -> list[tuple] | None:
        with psycopg.connect(settings.database_url) as conn:
            rows = conn.execute("SELECT symbol, ts, open, high, low, close, tick_count FROM market_data "
                                "WHERE symbol LIKE %s AND interval = '1d'", (f"K{run}%",)).fetchall()
        found = {(symbol, ts): (*(round(float(v), 6) for v in (o, h, lo, c)), n) for symbol, ts, o, h, lo, c, n in rows}
        return rows if found == expected else None

    rows = wait_for(whole, timeout=240, every=2, what="every bar whole in market_data")
    return {"sent": len(replay.messages), "acknowledged": len(acked), "delivered": sum(on_topic.values()),
            "lost": sum(1 for index in acked if on_topic[replay.ids[index]] == 0),
            "duplicated": sum(n - 1 for n in on_topic.values() if n > 1),
            "dead_lettered": len(dead_letters_with_keys(settings, {s.encode() for s in replay.symbols})),
            "bars_expected": len(expected), "bars_in_vault": len(rows),
            "seconds_without_acks": replay.seconds_without_acks()}


def begin(settings, logs) -> tuple[str, str, list, PacedReplay, dict[str, Worker]]:
    """A scenario's run tag, app id, market.ticks start offsets, replay (not started) and workers."""
    run, app_id = uuid.uuid4().hex[:5].upper(), f"test-{uuid.uuid4().hex[:8]}"
    starts = ends(settings, "market.ticks")
    return run, app_id, starts, PacedReplay(settings, run), start_workers(settings, app_id, logs, starts)


def start_workers(settings, app_id: str, logs, starts, **extra_env: str) -> dict[str, Worker]:
    # offsets committed first: a restarted worker resumes where its group stopped, never at the end
    commit_offsets(settings, f"{app_id}-bars", starts)
    commit_offsets(settings, f"{app_id}-persistence", ends(settings, "market.bars"))
    # a killed member holds its partitions until the group gives up on it: BROKER_SESSION_TIMEOUT
    env = {"ALGO_APP_ID": app_id, "BAR_IDLE_CLOSE_S": "1", "BROKER_SESSION_TIMEOUT": "10",
           "BROKER_HEARTBEAT_INTERVAL": "1", **extra_env}
    return {name: Worker(name, logs / f"{name}-1.log", **env) for name in ("bars", "persistence")}


def assert_none_lost_or_repeated(figures: dict) -> None:
    assert figures["acknowledged"] == figures["sent"], figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["dead_lettered"] == 0, figures


@pytest.mark.timeout(600)
def test_a_killed_broker_loses_no_acknowledged_tick_and_every_bar_lands_whole(provisioned, tmp_path):
    run, _, starts, replay, workers = begin(provisioned, tmp_path)
    killed_at = restarted_at = None
    try:
        replay.start_and_wait_for_a_fifth()
        os.kill(kafka_pid(provisioned), signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3)
        started(provisioned, "kafka")
        restarted_at = time.monotonic()
        replay.finish()
        figures = audit(provisioned, replay, starts, run)
        record_scenario("kafka_broker_kill_9", {
            "what": "SIGKILL to the single KRaft broker mid-replay, started again 3 s later; bars + persistence workers",
            **figures, "broker_down_s": round(restarted_at - killed_at, 1)})
        assert_none_lost_or_repeated(figures)
    finally:
        if killed_at is not None and restarted_at is None:
            started(provisioned, "kafka")  # leave the stack as the other tests expect it
        stop_all(workers)  # fails on "Crashed" in a worker's log
