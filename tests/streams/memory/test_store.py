"""streams/memory/store.py: the tiered store (Redis hot, cold_store in Postgres, a loader last) and the
access log. Integration tests run a private redis-server (their own port and configuration) against
the shared Postgres, with keys under a prefix of their own whose cold_store rows they delete."""
from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from streams.errors import ServiceUnavailable
from streams.memory import keys
from streams.memory.store import HEADER, AccessLog, TieredStore, dumps, pack, unpack
from streams.settings import MemorySettings, Settings
from tests.streams.memory.redis_server import PrivateRedis, private_redis

PREFIX = f"test-{uuid.uuid4().hex[:8]}"


def key(name: str) -> str:
    return f"{PREFIX}:{name}"


# --- no services ------------------------------------------------------------------------------------------

def test_header_carries_the_creation_time_and_foreign_bytes_are_not_values() -> None:
    raw = pack(b"payload", 1_700_000_000_123_456)
    assert len(raw) == HEADER.size + len(b"payload")
    assert unpack(raw) == (b"payload", 1_700_000_000_123_456)
    assert unpack(b"plain bytes someone else wrote") is None
    assert unpack(b"") is None


def test_json_is_compact_and_says_what_the_round_trip_loses() -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert dumps({"a": [1, 2.5, None], "b": "x"}) == b'{"a":[1,2.5,null],"b":"x"}'
    assert dumps({"t": moment, "pair": (1, 2)}) == b'{"t":"2024-01-02 03:04:05+00:00","pair":[1,2]}'


def test_access_records_name_kind_symbol_and_agent_in_micros() -> None:
    log = AccessLog(Settings(), "bridge")
    before = time.time_ns() // 1000
    log.record(keys.cache_key("bars", "AAPL", "1d", 200), "GET", "HOT", 512, 87)
    log.record("foreign-key", "SET", "COLD", 3, 0)
    first, second = log.pending()
    assert first == {"key": "bars:AAPL:1d:200", "ts": first["ts"], "op": "GET", "tier": "HOT", "size_bytes": 512,
                     "agent": "bridge", "kind": "bars", "latency_us": 87, "symbol": "AAPL"}
    assert before <= first["ts"] <= time.time_ns() // 1000
    assert (second["kind"], second["symbol"]) == ("", None)


def test_access_buffer_is_bounded_and_counts_what_it_dropped() -> None:
    log = AccessLog(Settings(), "risk", max_buffered=10)
    for index in range(25):
        log.record(f"k{index}", "GET", "MISS", 0, 0)
    assert [r["key"] for r in log.pending()] == [f"k{i}" for i in range(15, 25)]  # the newest are kept
    assert log.stats() == {"recorded": 25, "produced": 0, "dropped": 15, "delivery_failures": 0, "buffered": 10}


async def test_a_store_that_is_not_open_says_so() -> None:
    with pytest.raises(ServiceUnavailable, match="not open"):
        await TieredStore(Settings(), agent="test").get("k")


# --- against a private Redis and the shared Postgres ----------------------------------------------------------

@pytest.fixture(scope="module")
def redis_server():
    with private_redis() as server:
        yield server


@pytest.fixture
def cold_rows(provisioned):
    """Deletes this module's cold_store rows afterwards; yields a function reading one row's value."""
    conn = psycopg.connect(provisioned.database_url, autocommit=True)

    def value_of(name: str) -> bytes | None:
        row = conn.execute("SELECT value FROM cold_store WHERE key = %s", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    try:
        yield value_of
    finally:
        conn.execute("DELETE FROM cold_store WHERE key LIKE %s", (f"{PREFIX}:%",))
        conn.close()


@pytest.fixture
async def store(provisioned, redis_server, cold_rows):
    settings = dataclasses.replace(provisioned, redis_url=redis_server.url)
    async with TieredStore(settings, agent="test") as opened:
        yield opened


class CountingLoader:
    def __init__(self, value: bytes | None, delay_s: float = 0.0) -> None:
        self.value, self.delay_s, self.calls = value, delay_s, 0

    async def __call__(self) -> bytes | None:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return self.value


@pytest.mark.integration
async def test_a_miss_loads_once_then_the_value_is_hot(store, redis_server, cold_rows) -> None:
    loader = CountingLoader(b"computed")
    assert await store.get(key("a"), loader) == b"computed"
    assert await store.get(key("a"), loader) == b"computed"
    assert loader.calls == 1
    stats = store.stats()
    assert (stats["misses"], stats["hits_hot"], stats["loads"], stats["writes_hot"]) == (1, 1, 1, 1)
    assert stats["load_seconds"] > 0
    assert unpack(redis_server.client().get(key("a")))[0] == b"computed"
    assert cold_rows(key("a")) is None  # a hot value is not also written to Postgres


@pytest.mark.integration
async def test_a_miss_without_loader_or_value_is_none_and_stores_nothing(store, redis_server) -> None:
    assert await store.get(key("absent")) is None
    assert await store.get(key("absent"), CountingLoader(None)) is None
    assert redis_server.client().exists(key("absent")) == 0
    assert store.stats()["misses"] == 2


@pytest.mark.integration
async def test_fifty_concurrent_misses_share_one_load(store) -> None:
    loader = CountingLoader(b"once", delay_s=0.1)
    values = await asyncio.gather(*(store.get(key("flight"), loader) for _ in range(50)))
    assert values == [b"once"] * 50
    assert loader.calls == 1
    assert store.stats()["singleflight_joins"] == 49


@pytest.mark.integration
async def test_a_cancelled_caller_does_not_cancel_the_shared_load(store) -> None:
    loader = CountingLoader(b"survives", delay_s=0.2)
    first = asyncio.create_task(store.get(key("cancel"), loader))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(store.get(key("cancel"), loader))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == b"survives"
    assert loader.calls == 1


@pytest.mark.integration
async def test_a_demoted_value_is_read_cold_then_admitted_hot_again(store, redis_server, cold_rows,
                                                                    provisioned) -> None:
    assert await store.put(key("d"), b"value") is True
    assert await store.demote(key("d")) is True
    assert redis_server.client().exists(key("d")) == 0 and cold_rows(key("d")) == b"value"
    assert await store.get(key("d")) == b"value"  # COLD, and promoted
    assert await store.get(key("d")) == b"value"  # HOT
    stats = store.stats()
    assert (stats["hits_cold"], stats["hits_hot"], stats["demotions"]) == (1, 1, 1)
    assert cold_rows(key("d")) == b"value"  # Postgres keeps its copy
    with psycopg.connect(provisioned.database_url) as conn:  # the cold read was counted there
        assert conn.execute("SELECT access_count FROM cold_store WHERE key = %s", (key("d"),)).fetchone() == (1,)


@pytest.mark.integration
async def test_demote_of_a_value_that_changed_meanwhile_keeps_it_hot(store, redis_server, cold_rows,
                                                                     monkeypatch) -> None:
    await store.put(key("race"), b"old")
    upsert = store._cold_upsert

    async def upsert_then_overwrite(*args) -> None:  # a writer gets in between the copy and the delete
        await upsert(*args)
        await store.put(key("race"), b"new")

    monkeypatch.setattr(store, "_cold_upsert", upsert_then_overwrite)
    assert await store.demote(key("race")) is False
    assert unpack(redis_server.client().get(key("race")))[0] == b"new"
    assert store.stats()["demote_conflicts"] == 1
    assert await store.demote(key("absent")) is False


@pytest.mark.integration
async def test_no_read_sees_neither_tier_while_a_key_is_demoted_and_promoted(store, redis_server) -> None:
    await store.put(key("hammer"), b"always")
    stop = asyncio.Event()
    seen: list[bytes | None] = []

    async def reader() -> None:
        while not stop.is_set():
            seen.append(await store.get(key("hammer")))  # no loader: None would mean neither tier had it

    async def demoter() -> int:
        demoted = 0
        for _ in range(30):
            demoted += await store.demote(key("hammer"))
            while not await redis_server_client.exists(key("hammer")):  # until a reader promotes it again
                await asyncio.sleep(0)
        stop.set()
        return demoted

    import redis.asyncio

    redis_server_client = redis.asyncio.Redis.from_url(redis_server.url)
    readers = [asyncio.create_task(reader()) for _ in range(8)]
    try:
        demoted = await asyncio.wait_for(demoter(), 60)
    finally:
        stop.set()
        await asyncio.gather(*readers)
        await redis_server_client.aclose()
    assert demoted == 30 and len(seen) > 100
    assert set(seen) == {b"always"}
    stats = store.stats()
    assert stats["hits_cold"] > 0 and stats["hits_hot"] > 0 and stats["misses"] == 0


@pytest.mark.integration
async def test_a_value_older_than_max_age_is_a_miss_in_either_tier(store, redis_server) -> None:
    client = redis_server.client()
    old_us = time.time_ns() // 1000 - 10_000_000
    client.set(key("stale"), pack(b"old", old_us))
    loader = CountingLoader(b"fresh")
    assert await store.get(key("stale"), max_age_s=60) == b"old"
    assert await store.get(key("stale"), loader, max_age_s=5) == b"fresh"
    assert await store.get(key("stale"), loader, max_age_s=5) == b"fresh"  # now fresh and hot
    assert loader.calls == 1
    client.set(key("stale"), pack(b"old", old_us))
    assert await store.demote(key("stale"))  # cold_store's updated_at is the value's creation time
    assert await store.get(key("stale"), max_age_s=5) is None
    assert await store.get(key("stale"), max_age_s=60) == b"old"


@pytest.mark.integration
async def test_values_over_the_size_limit_stay_cold(provisioned, redis_server, cold_rows) -> None:
    settings = dataclasses.replace(provisioned, redis_url=redis_server.url,
                                   memory=MemorySettings(value_max_bytes=1000))
    async with TieredStore(settings, agent="test") as store:
        assert await store.put(key("big"), b"x" * 1001) is False
        assert await store.put(key("small"), b"x" * 1000) is True
        assert await store.get(key("big")) == b"x" * 1001  # COLD, and never admitted
        assert await store.get(key("big")) == b"x" * 1001
        assert redis_server.client().exists(key("big")) == 0
        assert store.stats()["hits_cold"] == 2 and store.stats()["oversize_writes"] == 1


@pytest.mark.integration
async def test_drop_removes_both_tiers(store, redis_server, cold_rows) -> None:
    await store.put(key("gone"), b"v")
    await store.demote(key("gone"))
    await store.get(key("gone"))  # promoted: now in both tiers
    assert await store.drop(key("gone")) is True
    assert redis_server.client().exists(key("gone")) == 0 and cold_rows(key("gone")) is None
    assert await store.get(key("gone")) is None
    assert await store.drop(key("gone")) is False


@pytest.mark.integration
async def test_json_values_round_trip(store) -> None:
    async def rows():
        return [{"symbol": "AAPL", "close": 1.5, "ts": "2024-01-02T00:00:00+00:00"}]

    assert await store.get_json(key("json"), rows) == await rows()
    assert await store.get_json(key("json")) == await rows()
    assert store.stats()["hits_hot"] == 1


@pytest.mark.integration
async def test_when_the_agent_stalls_writes_are_refused_cleanly_and_nothing_is_lost(provisioned, cold_rows) -> None:
    """Redis capped at 2 MB with noeviction and no agent running: writes past the cap are refused (put()
    returns False, the value goes to cold_store), and every key written reads back its value."""
    with private_redis(maxmemory="2mb") as capped:
        settings = dataclasses.replace(provisioned, redis_url=capped.url)
        async with TieredStore(settings, agent="test") as store:
            written: dict[str, bytes] = {}
            refused = 0
            for index in range(400):  # 400 x 8 KiB = 3.2 MB: well past the ~1 MB left above Redis's own use
                name, value = key(f"stall-{index}"), (b"%06d" % index) * 1366
                written[name] = value
                if not await store.put(name, value):
                    refused += 1
                    assert cold_rows(name) == value
            assert refused > 100
            assert store.stats()["refused_writes"] == refused
            assert capped.client().dbsize() == len(written) - refused  # Redis evicted nothing
            loads = CountingLoader(b"never")
            for name, value in written.items():
                assert await store.get(name, loads) == value
            assert loads.calls == 0
            stats = store.stats()
            assert stats["hits_cold"] == refused and stats["hits_hot"] == len(written) - refused
            assert stats["admission_refused"] == refused  # still full: the cold values stay cold
            # the agent, back, can still free memory under OOM (compare-and-delete uses UNLINK)
            hot = next(name for name in written if capped.client().exists(name))
            assert await store.demote(hot) is True
            assert await store.get(hot) == written[hot]


@pytest.mark.integration
async def test_with_redis_down_reads_and_writes_go_to_postgres(provisioned, cold_rows, caplog) -> None:
    server = PrivateRedis().start()
    settings = dataclasses.replace(provisioned, redis_url=server.url)
    try:
        async with TieredStore(settings, agent="test") as store:
            await store.put(key("outage"), b"kept")
            await store.demote(key("outage"))
            server.stop()
            assert await store.get(key("outage")) == b"kept"  # from Postgres, degraded
            assert await store.get(key("outage")) == b"kept"
            assert await store.put(key("outage-new"), b"cold") is False
            assert cold_rows(key("outage-new")) == b"cold"
            loader = CountingLoader(b"loaded")
            assert await store.get(key("outage-load"), loader) == b"loaded"
            assert cold_rows(key("outage-load")) == b"loaded"
            assert store.stats()["redis_degraded"] == 1
            assert sum("Redis is unavailable" in r.getMessage() for r in caplog.records) == 1  # logged once
            with pytest.raises(ServiceUnavailable, match="Redis"):
                await store.demote(key("outage"))
    finally:
        server.stop()


@pytest.mark.integration
async def test_with_postgres_down_a_hot_value_is_served_and_a_cold_read_waits(provisioned, redis_server) -> None:
    down = dataclasses.replace(provisioned, redis_url=redis_server.url,
                               database_url="postgresql://algo:algo@127.0.0.1:1/algo")
    async with TieredStore(down, agent="test") as store:
        await store.put(key("pg-down"), b"hot")
        assert await store.get(key("pg-down")) == b"hot"
        with pytest.raises(ServiceUnavailable, match="Postgres"):
            await store.get(key("pg-down-cold"), CountingLoader(b"x"))


@pytest.mark.integration
async def test_access_records_reach_cache_access_in_batches(provisioned, redis_server, cold_rows) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from streams.bus.codecs import CodecRegistry

    settings = dataclasses.replace(provisioned, redis_url=redis_server.url,
                                   memory=MemorySettings(access_batch_size=5, access_flush_s=0.2))
    consumer = Consumer(settings.kafka_config({"group.id": f"{PREFIX}-reader", "enable.auto.commit": False,
                                               "log_level": 2}))
    try:
        metadata = consumer.list_topics("cache.access", timeout=10).topics["cache.access"]
        ends = []
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition("cache.access", partition), timeout=10)
            ends.append(TopicPartition("cache.access", partition, high))
        consumer.assign(ends)
        log = AccessLog(settings, "test")
        name = keys.cache_key("backtest", "ZZTEST", PREFIX)
        async with TieredStore(settings, agent="test", access_log=log) as store:
            await store.get(name, CountingLoader(b"12345"))
            for _ in range(11):
                await store.get(name)
        assert log.stats()["produced"] == 12 and log.stats()["dropped"] == 0
        codec = CodecRegistry(settings.schema_registry_url).for_topic("cache.access")
        records, deadline = [], time.monotonic() + 30
        while len(records) < 12 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.key() == name.encode():
                records.append(codec.decode(message.value()))
    finally:
        consumer.close()
    assert [r["tier"] for r in records] == ["MISS"] + ["HOT"] * 11
    first = records[0]
    assert (first["op"], first["kind"], first["symbol"], first["agent"], first["size_bytes"]) == (
        "GET", "backtest", "ZZTEST", "test", 5)
    assert all(r["latency_us"] > 0 for r in records)


@pytest.mark.integration
async def test_an_unreachable_kafka_never_blocks_a_read(provisioned, redis_server, cold_rows) -> None:
    settings = dataclasses.replace(provisioned, redis_url=redis_server.url, kafka_bootstrap="127.0.0.1:1",
                                   memory=MemorySettings(access_batch_size=10, access_flush_s=0.05))
    log = AccessLog(settings, "test", max_buffered=50)
    store = await TieredStore(settings, agent="test", access_log=log).open()
    try:
        await store.put(key("nokafka"), b"v")
        started = time.perf_counter()
        for _ in range(300):
            assert await store.get(key("nokafka")) == b"v"
        assert time.perf_counter() - started < 5
        await asyncio.sleep(0.2)
        stats = log.stats()
        assert stats["recorded"] == 301 and stats["dropped"] >= 301 - 2 * 50  # at most 50 here + 50 queued
    finally:
        stopping = time.perf_counter()
        await store.close()
    assert time.perf_counter() - stopping < 10
    assert log.stats()["dropped"] + log.stats()["buffered"] >= 301 - 50  # the queued ones never got out either
