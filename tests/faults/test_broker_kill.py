"""Fault: kill -9 the Kafka broker mid-replay and start it again (issue 14, scenario 2).

100,000 ticks (50 symbols, 500 days, 4 ticks a day) are published by a producer with acks=all and
idempotence on, paced so that the bar and persistence workers keep up; when a fifth of them are
acknowledged the broker gets SIGKILL, and it is started again 3 s later. Audit afterwards:
- every acknowledged tick is on market.ticks exactly once (0 lost, 0 duplicated);
- market_data holds every (symbol, day) bar, whole (open, high, low, close, 4 ticks): ticks -> bars exact;
- nothing of the run was dead-lettered, and neither worker crashed.
The figures go to benchmarks/results/faults.json (scenario "kafka_broker_kill_9").
"""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from confluent_kafka import Producer

from streams.bus.codecs import CodecRegistry
from tests import fixtures
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


@pytest.mark.timeout(600)
def test_a_killed_broker_loses_no_acknowledged_tick_and_every_bar_lands_whole(provisioned, tmp_path):
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    run, app_id = uuid.uuid4().hex[:5].upper(), f"test-{uuid.uuid4().hex[:8]}"
    symbols = [f"K{run}{i:02d}" for i in range(SYMBOLS)]
    day0 = fixtures.T0.replace(hour=0, minute=0)
    messages = [(symbols[s].encode(), codec.encode(fixtures.tick(
                    symbol=symbols[s], ts=day0 + timedelta(days=d, hours=i + 1), price=price(s, d) + OFFSETS[i],
                    size=1.0, seq=d * TICKS_A_DAY + i)))
                for d in range(DAYS) for s in range(SYMBOLS) for i in range(TICKS_A_DAY)]
    starts = ends(provisioned, "market.ticks")
    for worker in ("bars", "persistence"):  # a restart (or a reconnect) resumes, never jumps to the end
        commit_offsets(provisioned, f"{app_id}-{worker}", starts if worker == "bars" else ends(provisioned, "market.bars"))
    env = {"ALGO_APP_ID": app_id, "BAR_IDLE_CLOSE_S": "1"}
    workers = [Worker("bars", tmp_path / "bars.log", **env), Worker("persistence", tmp_path / "persistence.log", **env)]
    acknowledged: list[tuple[float, int]] = []  # (monotonic time, index) per delivery report without error
    failed: list[str] = []
    killed_at = restarted_at = None
    try:
        producer = Producer(provisioned.kafka_config({
            "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5,
            "message.timeout.ms": 300_000, "log_level": 2}))

        def report(index):
            def on_delivery(error, _message):
                if error is None:
                    acknowledged.append((time.monotonic(), index))
                else:
                    failed.append(str(error))
            return on_delivery

        def publish():
            begun = time.monotonic()
            for index, (key, value) in enumerate(messages):
                while True:
                    try:
                        producer.produce("market.ticks", key=key, value=value, on_delivery=report(index))
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
                ahead = begun + index / RATE - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush(300)

        publisher = threading.Thread(target=publish, name="publisher")
        publisher.start()
        wait_for(lambda: len(acknowledged) >= len(messages) // 5, timeout=120, what="a fifth of the ticks acknowledged")
        os.kill(kafka_pid(provisioned), signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3)
        started(provisioned, "kafka")
        restarted_at = time.monotonic()
        publisher.join(360)
        assert not publisher.is_alive(), "the publisher did not finish within 6 minutes of the broker's restart"
        assert not failed, failed[:3]

        on_topic, ours = Counter(), set(symbols)
        for _, tick in read_from(provisioned, starts, timeout=120):
            if tick["symbol"] in ours:
                on_topic[(tick["symbol"], tick["seq"])] += 1
        acked = {index for _, index in acknowledged}
        sent_ids = [(symbols[s], d * TICKS_A_DAY + i) for d in range(DAYS) for s in range(SYMBOLS)
                    for i in range(TICKS_A_DAY)]
        lost = sum(1 for index in acked if on_topic[sent_ids[index]] == 0)
        duplicated = sum(n - 1 for n in on_topic.values() if n > 1)

        def bars_in_vault() -> list[tuple]:
            with psycopg.connect(provisioned.database_url) as conn:
                return conn.execute(
                    "SELECT symbol, ts, open, high, low, close, tick_count FROM market_data "
                    "WHERE symbol LIKE %s AND interval = '1d' ORDER BY symbol, ts", (f"K{run}%",)).fetchall()

        expected = {(symbols[s], day0 + timedelta(days=d)): (*(round(price(s, d) + o, 6) for o in OFFSETS), 4)
                    for s in range(SYMBOLS) for d in range(DAYS)}

        def whole() -> list[tuple] | None:
            rows = bars_in_vault()
            found = {(symbol, ts): (*(round(float(v), 6) for v in (o, h, lo, c)), n) for symbol, ts, o, h, lo, c, n in rows}
            return rows if found == expected else None

        rows = wait_for(whole, timeout=240, every=2, what="every bar whole in market_data")
        gaps = [b - a for (a, _), (b, _) in zip(sorted(acknowledged), sorted(acknowledged)[1:])]
        dead = dead_letters_with_keys(provisioned, {symbol.encode() for symbol in symbols})
        record_scenario("kafka_broker_kill_9", {
            "what": "SIGKILL to the single KRaft broker mid-replay, started again 3 s later; bars + persistence workers",
            "sent": len(messages), "acknowledged": len(acked), "delivered": sum(on_topic.values()), "lost": lost,
            "duplicated": duplicated, "dead_lettered": len(dead), "bars_expected": len(expected),
            "bars_in_vault": len(rows), "broker_down_s": round(restarted_at - killed_at, 1),
            "seconds_without_acks": round(max(gaps), 1)})
        assert len(acked) == len(messages) and lost == 0 and duplicated == 0, (len(acked), lost, duplicated)
        assert dead == [], dead[:3]
    finally:
        if killed_at is not None and restarted_at is None:
            started(provisioned, "kafka")  # leave the stack as the other tests expect it
        for worker in workers:
            worker.stop()  # fails on "Crashed" in a worker's log
