"""Integration: the bar agent on the real stack."""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest

from streams.bus.codecs import CodecRegistry
from tests import fixtures
from tests.kafka_tools import Worker, commit_offsets, ends, produce_many, read_from, wait_for

pytestmark = pytest.mark.integration


def test_a_worker_behind_its_partition_never_closes_a_bar_whose_ticks_are_still_unread(provisioned, tmp_path):
    """Symbol X's first tick, then 40,000 ticks of another symbol, then X's other ticks, all on one
    partition: reading the burst takes the worker longer than BAR_IDLE_CLOSE_S, and X's bar must
    still close once, whole (an idle close by wall time alone published it with one tick, then
    again with four)."""
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    run = uuid.uuid4().hex[:6].upper()
    x, burst = f"X{run}", f"Y{run}"
    day = fixtures.T0.replace(hour=0, minute=0)

    def ticks(symbol: str, prices, start=day, step=timedelta(seconds=1), first_seq=0):
        return [(symbol.encode(), codec.encode(fixtures.tick(symbol=symbol, ts=start + i * step, price=p,
                                                             seq=first_seq + i)))
                for i, p in enumerate(prices)]

    starts, app_id = ends(provisioned, "market.bars"), f"test-{uuid.uuid4().hex[:8]}"
    messages = (ticks(x, [10.0]) + ticks(burst, [50.0 + i % 10 for i in range(40_000)], step=timedelta(seconds=2))
                + ticks(x, [12.0, 9.0, 11.0], start=day + timedelta(hours=1), first_seq=1))
    # all published before the worker starts (its group begins where they begin): the worker is behind
    commit_offsets(provisioned, f"{app_id}-bars", ends(provisioned, "market.ticks"))
    produce_many(provisioned, "market.ticks", messages, partition=0)
    worker = Worker("bars", tmp_path / "bars.log", BAR_IDLE_CLOSE_S="0.3", ALGO_APP_ID=app_id)
    try:

        def bars_of_x():
            found = [r for _, r in read_from(provisioned, starts) if r["symbol"] == x]
            return found if found else None

        [bar] = wait_for(bars_of_x, timeout=120, what=f"the bar of {x}")
        assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["tick_count"]) == (10.0, 12.0, 9.0, 11.0, 4)
        wait_for(lambda: any(r["symbol"] == burst for _, r in read_from(provisioned, starts)), timeout=120,
                 what=f"the bars of {burst}")
        assert [r for _, r in read_from(provisioned, starts) if r["symbol"] == x] == [bar]  # no second version
    finally:
        worker.stop()


def test_each_tick_is_applied_once_when_the_group_offsets_go_back_or_skip_ahead(provisioned, tmp_path):
    """The bar agent keeps, per partition, the next offset it has not applied. Restarted with its
    group moved back to the start, it re-reads ticks it has applied and publishes no bar twice;
    restarted with its group moved past two ticks (what Faust does now and then in a rebalance), it
    reads those two back from the broker and the bar comes out whole."""
    from confluent_kafka import TopicPartition

    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    symbol, app_id = f"G{uuid.uuid4().hex[:6].upper()}", f"test-{uuid.uuid4().hex[:8]}"
    group, day0 = f"{app_id}-bars", fixtures.T0.replace(hour=0, minute=0)

    def day_ticks(d: int, count: int = 4):
        return [(symbol.encode(), codec.encode(fixtures.tick(symbol=symbol, ts=day0 + timedelta(days=d, hours=i + 1),
                                                             price=10.0 + d + (i % 2), seq=4 * d + i)))
                for i in range(count)]

    def bars():
        return [r for _, r in read_from(provisioned, starts) if r["symbol"] == symbol]

    def offset_of_next_tick() -> int:
        return ends(provisioned, "market.ticks")[0].offset

    starts, first_tick = ends(provisioned, "market.bars"), offset_of_next_tick()
    commit_offsets(provisioned, group, ends(provisioned, "market.ticks"))
    worker = Worker("bars", tmp_path / "first.log", ALGO_APP_ID=app_id)
    try:
        produce_many(provisioned, "market.ticks", day_ticks(0) + day_ticks(1) + day_ticks(2), partition=0)
        wait_for(lambda: len(bars()) >= 3, timeout=60, what="three days' bars")
    finally:
        worker.stop()
    commit_offsets(provisioned, group, [TopicPartition("market.ticks", 0, first_tick)])  # back to the start
    worker = Worker("bars", tmp_path / "second.log", ALGO_APP_ID=app_id)
    try:
        produce_many(provisioned, "market.ticks", day_ticks(3), partition=0)
        wait_for(lambda: len({b["ts"] for b in bars()}) >= 4, timeout=60, what="day 3's bar")
    finally:
        worker.stop()
    day4 = offset_of_next_tick()
    produce_many(provisioned, "market.ticks", day_ticks(4) + day_ticks(5, count=1), partition=0)
    commit_offsets(provisioned, group, [TopicPartition("market.ticks", 0, day4 + 2)])  # two ticks skipped
    worker = Worker("bars", tmp_path / "third.log", ALGO_APP_ID=app_id)
    try:
        wait_for(lambda: len({b["ts"] for b in bars()}) >= 6, timeout=60, what="days 4 and 5")
    finally:
        worker.stop()
    published = [(b["ts"], b["open"], b["high"], b["low"], b["close"], b["tick_count"]) for b in bars()]
    expected = [(day0 + timedelta(days=d), 10.0 + d, 11.0 + d, 10.0 + d, 11.0 + d, 4) for d in range(5)]
    assert sorted(set(published)) == expected + [(day0 + timedelta(days=5), 15.0, 15.0, 15.0, 15.0, 1)]
    # days 0 and 1 once: the re-read ticks were not applied again (they would close and re-open both
    # bars). Days 2 and 3 were idle-closed by one worker and are closed again, the same, by the next
    # when a later day begins: which bars a worker has published is its own, and the sink upserts.
    assert Counter(ts for ts, *_ in published) == {expected[0][0]: 1, expected[1][0]: 1, expected[2][0]: 2,
                                                  expected[3][0]: 2, expected[4][0]: 1, day0 + timedelta(days=5): 1}
    assert "read back from the broker" in worker.log()
