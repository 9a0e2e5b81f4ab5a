"""Integration: the bar agent on the real stack."""
from __future__ import annotations

import uuid
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
