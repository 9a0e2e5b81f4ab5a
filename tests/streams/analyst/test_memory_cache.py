"""The analyst reads its as-of retrievals and news embeddings through the tiered store
(streams.analyst.service use_memory): a second analysis of the same item is answered from Redis (HOT)
and votes the same. In-process, against a private redis-server and the shared Postgres, in a week of
its own far from the demo corpus."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from streams.analyst.service import Analyst, embedding_key, retrieval_key
from streams.memory.store import TieredStore
from tests.streams.memory.redis_server import private_redis

pytestmark = pytest.mark.integration

T0 = datetime(2033, 5, 2, 14, 0, tzinfo=timezone.utc) + timedelta(days=7 * (uuid.uuid4().int % 500))


def test_keys_name_symbol_as_of_k_window_and_item() -> None:
    item = {"id": "feed:42", "ts": datetime(2020, 1, 2, tzinfo=timezone.utc)}
    assert retrieval_key(item, "AAPL", 10, 604800.0) == "retrieval:AAPL:1577923200000000:10:604800:feed%3A42"
    assert embedding_key("feed:42").startswith("embedding:feed%3A42:all-MiniLM-L6-v2@")


async def test_a_second_analysis_of_an_item_reads_retrieval_and_embeddings_hot(provisioned) -> None:
    run = f"analyst-memory-{uuid.uuid4().hex[:8]}"
    items = [{"id": f"{run}-{n}", "ts": T0 + timedelta(hours=n), "source": "test", "headline": headline,
              "body": "", "symbols": ["AAPL"], "url": None}
             for n, headline in enumerate(["Apple reports record quarterly profit as iPhone sales surge",
                                           "Apple raises its dividend after record iPhone profit"])]
    keys_written: list[str] = []
    try:
        with private_redis() as server:
            settings = dataclasses.replace(provisioned, redis_url=server.url)
            async with TieredStore(settings, agent="analyst") as store:
                analyst = Analyst(settings)
                analyst.use_memory(store, asyncio.get_running_loop())
                await asyncio.to_thread(analyst.analyse, items[0])
                first = await asyncio.to_thread(analyst.analyse, items[1])
                before = store.stats()
                again = await asyncio.to_thread(analyst.analyse, items[1])
                after = store.stats()
                keys_written = [k.decode() for k in server.client().keys("*")]
        assert [s["signal_id"] for s in again.signals] == [s["signal_id"] for s in first.signals]
        assert again.records[0]["vote"] == first.records[0]["vote"]
        assert [c["id"] for c in first.records[0]["inputs"]["context"]] == [items[0]["id"]]  # it retrieved the earlier item
        assert again.records[0]["inputs"] == first.records[0]["inputs"]
        # the second analysis: the item's embedding, the retrieval and the retrieved item's embedding, all HOT
        assert after["hits_hot"] - before["hits_hot"] == 3
        assert (after["misses"], after["loads"], after["hits_cold"]) == (before["misses"], before["loads"], 0)
        assert retrieval_key(items[1], "AAPL", settings.analyst.context_k, settings.analyst.window_s) in keys_written
        assert embedding_key(items[0]["id"]) in keys_written
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM news WHERE id LIKE %s", (f"{run}-%",))
            conn.execute("DELETE FROM cold_store WHERE key = ANY(%s)", (keys_written,))
