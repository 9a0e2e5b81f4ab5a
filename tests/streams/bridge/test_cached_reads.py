"""The bridge's polled reads (recent bars, decisions, positions) go through the tiered store: the
second read within MEMORY_BRIDGE_MAX_AGE_S is a HOT hit in Redis, a later one sees new rows. Runs
against a private redis-server and the shared Postgres, on a symbol and account of its own."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from streams.bridge.store import Store
from streams.settings import MemorySettings
from tests.streams.memory.redis_server import private_redis

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_url():
    with private_redis() as server:
        yield server.url


async def test_bars_decisions_and_positions_are_read_through_redis(provisioned, redis_url) -> None:
    symbol = f"ZZ{uuid.uuid4().hex[:6].upper()}"
    settings = dataclasses.replace(provisioned, redis_url=redis_url,
                                   memory=MemorySettings(bridge_max_age_s=0.5))
    store = Store(settings)
    await store.open()
    conn = psycopg.connect(provisioned.database_url, autocommit=True)
    try:
        first = await store.bars(symbol, "1d", 10)
        assert first == [] and store.memory.stats()["misses"] == 1
        conn.execute("INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume, tick_count) "
                     "VALUES (%s, '1d', %s, 10, 11, 9, 10.5, 100, 4)",
                     (symbol, datetime(2020, 1, 2, tzinfo=timezone.utc)))
        assert await store.bars(symbol, "1d", 10) == []  # HOT: the cached answer, younger than max age
        assert store.memory.stats()["hits_hot"] == 1
        await asyncio.sleep(0.6)
        fresh = await store.bars(symbol, "1d", 10)  # stale now: the query runs again
        assert [(row["symbol"], row["close"]) for row in fresh] == [(symbol, 10.5)]
        assert await store.bars(symbol, "1d", 10) == fresh
        await store.decisions(symbol, 5)
        await store.decisions(symbol, 5)
        await store.positions(symbol)
        await store.positions(symbol)
        stats = store.memory.stats()
        assert (stats["misses"], stats["hits_hot"]) == (4, 4)
        assert store.memory.access_log.stats()["recorded"] == 8  # every read is a cache.access record
        import redis

        client = redis.Redis.from_url(redis_url)
        assert sorted(k.decode() for k in client.keys("*")) == sorted(
            [f"bars:{symbol}:1d:10", f"decisions:{symbol}:5", f"positions:{symbol}"])
        client.close()
    finally:
        await store.close()
        conn.execute("DELETE FROM market_data WHERE symbol = %s", (symbol,))
        conn.close()
