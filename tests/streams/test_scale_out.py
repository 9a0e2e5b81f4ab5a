"""Integration: a symbol-keyed agent scales out by partitions. Two processes of the bar worker share
market.ticks' partitions in one consumer group; one is killed with SIGKILL, the other takes its
partitions over (and their open bars, from the changelog), and every bar comes out whole."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from confluent_kafka.admin import AdminClient

from streams.bus.codecs import CodecRegistry
from tests import fixtures
from tests.kafka_tools import Worker, commit_offsets, ends, produce_many, read_from, wait_for

pytestmark = pytest.mark.integration

SYMBOLS = 12
GROUP_ENV = {"BROKER_SESSION_TIMEOUT": "8", "BROKER_HEARTBEAT_INTERVAL": "1", "BAR_IDLE_CLOSE_S": "1"}


def assignment(settings, group: str) -> list[set[int]]:
    """The market.ticks partitions of each member of `group`."""
    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    [description] = [f.result(timeout=15) for f in admin.describe_consumer_groups([group]).values()]
    return [{tp.partition for tp in member.assignment.topic_partitions if tp.topic == "market.ticks"}
            for member in description.members]


def test_two_bar_workers_share_the_partitions_and_one_takes_over_when_the_other_is_killed(provisioned, tmp_path):
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    run, app_id = uuid.uuid4().hex[:5].upper(), f"test-{uuid.uuid4().hex[:8]}"
    symbols = [f"S{run}{i:02d}" for i in range(SYMBOLS)]
    day0 = fixtures.T0.replace(hour=0, minute=0)
    days = [day0 + timedelta(days=d) for d in range(20)]

    def ticks(day_numbers):
        out = []
        for d in day_numbers:
            for symbol in symbols:
                for i, price in enumerate((10.0 + d, 12.0 + d, 9.0 + d, 11.0 + d)):
                    out.append((symbol.encode(), codec.encode(fixtures.tick(
                        symbol=symbol, ts=days[d] + timedelta(hours=i + 1), price=price, seq=4 * d + i))))
        return out

    group = f"{app_id}-bars"
    commit_offsets(provisioned, group, ends(provisioned, "market.ticks"))
    starts = ends(provisioned, "market.bars")
    first = Worker("bars", tmp_path / "first.log", ALGO_APP_ID=app_id, **GROUP_ENV)
    second = Worker("bars", tmp_path / "second.log", ALGO_APP_ID=app_id, **GROUP_ENV)
    try:
        shares = wait_for(lambda: (lambda a: a if len(a) == 2 and all(a) else None)(assignment(provisioned, group)),
                          timeout=60, what="two members with partitions each")
        assert set.union(*shares) == {0, 1, 2} and not set.intersection(*shares)

        def bars():
            return [r for _, r in read_from(provisioned, starts) if r["symbol"] in symbols]

        produce_many(provisioned, "market.ticks", ticks(range(10)))
        wait_for(lambda: len({(b["symbol"], b["ts"]) for b in bars()}) >= SYMBOLS * 10, timeout=90,
                 what="the first ten days' bars")
        time.sleep(3 * float(GROUP_ENV["BAR_IDLE_CLOSE_S"]))  # idle closes of the last day, if any more come
        before_kill = Counter((b["symbol"], b["ts"]) for b in bars())
        # each bar once: only the worker that owns a symbol's partition closes its bars
        assert set(before_kill.values()) == {1}, [k for k, n in before_kill.items() if n > 1][:5]
        first.process.kill()  # SIGKILL: no goodbye to the group, no final commit
        first.process.wait(10)
        # the survivor takes every partition and, from the changelog, the dead worker's open bars
        wait_for(lambda: assignment(provisioned, group) == [{0, 1, 2}], timeout=60, what="the survivor's takeover")
        # the ticks come after the takeover: ticks that arrive during it can still make a partial bar
        # (seen once in a clean-clone run, issue 13's note); the open bars the dead worker left are
        # closed by the survivor from its recovered table
        produce_many(provisioned, "market.ticks", ticks(range(10, 20)))
        wait_for(lambda: len({(b["symbol"], b["ts"]) for b in bars()}) >= SYMBOLS * 20, timeout=120,
                 what="every bar after the kill")
    finally:
        second.stop()
        if first.process.poll() is None:
            first.process.kill()
    published = bars()
    versions: dict[tuple, set] = {}
    for bar in published:
        versions.setdefault((bar["symbol"], bar["ts"]), set()).add(
            (bar["open"], bar["high"], bar["low"], bar["close"], bar["tick_count"]))
    assert sorted(versions) == sorted((s, day) for s in symbols for day in days)  # nothing lost
    for (symbol, ts), seen in versions.items():  # nothing counted twice, nothing partial
        d = days.index(ts)
        assert seen == {(10.0 + d, 12.0 + d, 9.0 + d, 11.0 + d, 4)}, (symbol, ts, seen)
