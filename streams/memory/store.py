"""The tiered store: Redis is the hot tier, Postgres's `cold_store` the cold one, and a loader (the
query or computation the value came from) the last resort.

get(key, load): Redis GET -> HOT; else cold_store -> COLD (and admitted to Redis); else load() -> MISS
(the value is written to Redis, or to cold_store when Redis refuses it). Concurrent misses of one key
in one process share one load (single-flight; a caller that joins shares the first caller's loader and
max_age_s). Every get() records one CacheAccess (AccessLog), the input of the Memory agent, as do put()
(SET) and drop() (DELETE); demote() does not (it is the agent's own move, not a use). The agent is the
only evictor: Redis runs with maxmemory and noeviction, so a write past the cap is refused (-OOM),
counted, and the value stays cold; nothing is lost. A cold read also bumps cold_store's
last_access_at/access_count (one UPDATE ... RETURNING).

What a value carries: in Redis a 9-byte header (a format byte, then the value's creation time in
microseconds, big-endian) before the bytes; in cold_store the bytes, with `updated_at` = that creation
time. max_age_s compares against it, so a stale value is a miss whichever tier holds it. No Redis TTL
is set: freshness is judged at read time, and removing keys stays the agent's job.

Consistency: a promoted value stays in cold_store too (Postgres keeps a copy; demote overwrites it), and
demote() copies a value to cold_store BEFORE a compare-and-delete script removes it from Redis, so a
reader always finds the key in one tier or the other. put() writes Redis only; a cold copy left from an
earlier demotion may then be older, which a reader sees only if Redis loses the key outside demote()
(an outage): Postgres is the durable tier, not a mirror of every write.

Outages: Redis down -> reads and writes go to Postgres (logged once per outage; Redis is tried again
after REDIS_RETRY_S); Postgres down when it is needed -> streams.errors.ServiceUnavailable, which the
agents wait out (streams.outages.until_available). demote() and drop() need both tiers.
"""
from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections import Counter, deque
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from streams.errors import CodecError, ServiceUnavailable
from streams.memory import keys
from streams.outages import KAFKA, first_line, postgres_errors
from streams.settings import Settings

log = logging.getLogger("algo.memory.store")

REDIS = "Redis"
TOPIC = "cache.access"
HEADER = struct.Struct(">Bq")  # format, creation time (micros since the epoch)
FORMAT = 1
REDIS_RETRY_S = 1.0  # after a Redis failure, skip it this long (no connect timeout on every read)
REDIS_TIMEOUT_S = 1.0
POOL_TIMEOUT_S = 5.0
ACCESS_BUFFER_MAX = 50_000  # CacheAccess records kept while Kafka is unreachable; older ones are dropped

# Deletes the key only if it still holds the value that was copied to Postgres (compare-and-delete).
# No `#!lua` shebang: a flagless script runs under OOM, and UNLINK is allowed there (the agent must be
# able to free memory when Redis is full).
COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('UNLINK', KEYS[1])
end
return 0
"""

# The access bump is telemetry: its commit does not wait for the WAL flush (synchronous_commit off for
# this statement's transaction only), so a cold read costs no fsync. Demotions keep synchronous commits.
COLD_READ = ("UPDATE cold_store SET last_access_at = now(), access_count = access_count + 1 "
             "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
             "WHERE key = %s RETURNING value, updated_at")
COLD_UPSERT = ("INSERT INTO cold_store (key, value, size_bytes, updated_at) VALUES (%s, %s, %s, %s) "
               "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, size_bytes = EXCLUDED.size_bytes, "
               "updated_at = EXCLUDED.updated_at")
COLD_DELETE = "DELETE FROM cold_store WHERE key = %s"

Loader = Callable[[], Awaitable[bytes | None]]


def now_us() -> int:
    return time.time_ns() // 1000


def pack(value: bytes, created_us: int) -> bytes:
    return HEADER.pack(FORMAT, created_us) + value


def unpack(raw: bytes) -> tuple[bytes, int] | None:
    """(value, creation micros), or None for bytes this store did not write."""
    if len(raw) < HEADER.size or raw[0] != FORMAT:
        return None
    return raw[HEADER.size:], HEADER.unpack_from(raw)[1]


def _fresh(created_us: int, max_age_s: float | None) -> bool:
    return max_age_s is None or now_us() - created_us <= max_age_s * 1e6


def dumps(value: Any) -> bytes:
    """Compact JSON. The round trip keeps JSON types (dict, list, str, int, float, bool, None); a tuple comes
    back a list, and other values (datetime, Decimal, ...) come back as their str()."""
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False).encode()


class AccessLog:
    """Batches CacheAccess records to `cache.access` (key = cache key, Avro through the registry):
    access_batch_size records per produce, or at least every access_flush_s.

    Telemetry, not business data: record() never blocks and never fails. While Kafka or the registry is
    unreachable at most `max_buffered` records wait (here and in the producer's queue); older ones are
    dropped and counted (stats()["dropped"])."""

    def __init__(self, settings: Settings, agent: str, *, max_buffered: int = ACCESS_BUFFER_MAX) -> None:
        self.settings, self.agent = settings, agent
        self.batch_size = max(1, settings.memory.access_batch_size)
        self.flush_s = max(0.01, settings.memory.access_flush_s)
        self.max_buffered = max(1, max_buffered)
        self._buffer: deque[dict] = deque()
        self._counts = Counter(recorded=0, produced=0, dropped=0, delivery_failures=0)
        self._producer = None
        self._codec = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._warned = False

    def record(self, key: str, op: str, tier: str, size_bytes: int, latency_us: int) -> None:
        kind = keys.kind_of(key)
        self._buffer.append({"key": key, "ts": now_us(), "op": op, "tier": tier, "size_bytes": int(size_bytes),
                             "agent": self.agent, "kind": "" if kind == keys.OTHER else kind,
                             "latency_us": int(latency_us), "symbol": keys.symbol_of(key)})
        self._counts["recorded"] += 1
        while len(self._buffer) > self.max_buffered:
            self._buffer.popleft()
            self._counts["dropped"] += 1
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    def pending(self) -> list[dict]:
        """The records not yet handed to Kafka (oldest first)."""
        return list(self._buffer)

    def stats(self) -> dict[str, int]:
        return {**self._counts, "buffered": len(self._buffer)}

    async def start(self) -> None:
        from confluent_kafka import Producer

        from streams.bus.codecs import CodecRegistry

        if self._task is not None:
            return
        self._codec = CodecRegistry(self.settings.schema_registry_url).for_topic(TOPIC)
        self._producer = Producer(self.settings.kafka_config({
            "acks": "1", "linger.ms": 50, "partitioner": "murmur2_random", "log_level": 2,
            "message.timeout.ms": 30_000, "queue.buffering.max.messages": self.max_buffered,
            "client.id": f"{self.settings.app_id}-{self.agent}-access"}))
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"access-log-{self.agent}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Produces what is buffered (waiting at most timeout_s for Kafka) and ends the producer."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except asyncio.TimeoutError:
            self._task.cancel()
        except Exception:  # noqa: BLE001 - telemetry never fails a shutdown
            log.exception("access log: flush failed")
        self._task = None
        producer, self._producer = self._producer, None
        if producer is not None:
            left = await asyncio.to_thread(producer.flush, max(0.1, timeout_s / 2))
            self._counts["dropped"] += left
        del producer  # a librdkafka producer has no close(): dropping the last reference ends its threads

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            while self._buffer:
                if not await self._produce_batch():
                    break
            self._producer.poll(0)
            if self._stopping:
                return

    async def _produce_batch(self) -> bool:
        """Produces up to one batch; False (the rest put back) when the registry or Kafka is not taking it."""
        batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
        sent = 0
        try:
            values = await asyncio.to_thread(lambda: [self._codec.encode(r) for r in batch])
            for record, value in zip(batch, values):
                self._producer.produce(TOPIC, key=record["key"].encode(), value=value, on_delivery=self._delivered)
                sent += 1
        except ServiceUnavailable as error:  # the registry is down
            self._warn(error)
        except CodecError:  # a record the schema refuses (a bug here, not an outage): drop the batch
            log.exception("access log: %d records do not encode as CacheAccess; dropped", len(batch))
            self._counts["dropped"] += len(batch)
            return True
        except BufferError:  # the producer's queue is full: Kafka is not taking them
            self._warn(ServiceUnavailable(KAFKA, "the producer's queue is full"))
        self._counts["produced"] += sent
        self._buffer.extendleft(reversed(batch[sent:]))  # oldest first again, for the next round
        while len(self._buffer) > self.max_buffered:
            self._buffer.popleft()
            self._counts["dropped"] += 1
        return sent == len(batch)

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self._counts["delivery_failures"] += 1
            self._counts["dropped"] += 1

    def _warn(self, error: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("access log: %s; records wait (at most %d, then the oldest are dropped)", error,
                        self.max_buffered)


class TieredStore:
    """Redis hot, Postgres cold, a loader last; see the module docstring. One per process (or agent);
    open() before use, close() after (or `async with`)."""

    def __init__(self, settings: Settings, *, agent: str, access_log: AccessLog | None = None) -> None:
        self.settings, self.agent, self.access_log = settings, agent, access_log
        self.value_max_bytes = settings.memory.value_max_bytes
        self._redis = None
        self._pool = None
        self._compare_and_delete = None
        self._flights: dict[str, asyncio.Task] = {}
        self._counts = Counter()
        self._load_seconds = 0.0
        self._redis_down_until = 0.0
        self._redis_down_since: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> "TieredStore":
        """Connects lazily: open() succeeds while a service is down (reads then degrade or wait)."""
        import redis.asyncio as aioredis
        from psycopg_pool import AsyncConnectionPool
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if self._redis is not None:
            return self
        self._redis = aioredis.Redis.from_url(
            self.settings.redis_client_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0))  # no retries inside the client: the store falls through to Postgres
        self._compare_and_delete = self._redis.register_script(COMPARE_AND_DELETE)
        self._pool = AsyncConnectionPool(self.settings.database_url, min_size=1, max_size=4, open=False,
                                         timeout=POOL_TIMEOUT_S, kwargs={"autocommit": True, "connect_timeout": 5},
                                         name=f"memory-{self.agent}")
        await self._pool.open(wait=False)
        if self.access_log is not None:
            await self.access_log.start()
        return self

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.cancel()
        if self.access_log is not None:
            await self.access_log.stop()
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def opened(self) -> bool:
        return self._redis is not None

    async def __aenter__(self) -> "TieredStore":
        return await self.open()

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    def stats(self) -> dict[str, float]:
        """Counters since open: hits by tier, misses, loads and their seconds, refused (OOM) and oversize
        writes, demotions, drops, Redis failures (reads that fell through to Postgres)."""
        names = ("hits_hot", "hits_cold", "misses", "loads", "singleflight_joins", "writes_hot", "writes_cold",
                 "refused_writes", "oversize_writes", "admission_refused", "demotions", "demote_conflicts", "drops",
                 "redis_errors")
        stats: dict[str, float] = {name: self._counts[name] for name in names}
        stats["load_seconds"] = self._load_seconds
        stats["redis_degraded"] = int(self._redis_down_since is not None)
        if self.access_log is not None:
            stats["access_dropped"] = self.access_log.stats()["dropped"]
        return stats

    # --- reads -------------------------------------------------------------------------------------------

    async def get(self, key: str, load: Loader | None = None, *, max_age_s: float | None = None) -> bytes | None:
        self._require_open()
        started = time.perf_counter()
        value = await self._redis_value(key, max_age_s)
        if value is not None:
            tier = "HOT"
        else:
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = asyncio.ensure_future(self._fill(key, load, max_age_s))
                flight.add_done_callback(lambda done, k=key: self._landed(k, done))
            else:
                self._counts["singleflight_joins"] += 1
            tier, value = await asyncio.shield(flight)  # a cancelled caller does not cancel the others' load
        self._counts[{"HOT": "hits_hot", "COLD": "hits_cold", "MISS": "misses"}[tier]] += 1
        self._record(key, "GET", tier, len(value) if value is not None else 0, started)
        return value

    def _landed(self, key: str, flight: asyncio.Task) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: every waiter has it already; no "never retrieved" warning

    async def get_json(self, key: str, load_json: Callable[[], Awaitable[Any]] | None = None, *,
                       max_age_s: float | None = None) -> Any:
        """get() of a JSON value (see dumps() for what the round trip keeps); None when absent."""
        async def load() -> bytes | None:
            value = await load_json()
            return None if value is None else dumps(value)

        raw = await self.get(key, load if load_json is not None else None, max_age_s=max_age_s)
        return None if raw is None else json.loads(raw)

    async def _fill(self, key: str, load: Loader | None, max_age_s: float | None) -> tuple[str, bytes | None]:
        """The miss path, once per key at a time: Redis again (a flight that just ended may have filled
        it), cold_store, then the loader."""
        value = await self._redis_value(key, max_age_s)
        if value is not None:
            return "HOT", value
        cold = await self._cold_read(key)
        if cold is not None and _fresh(cold[1], max_age_s):
            await self._admit(key, *cold)
            return "COLD", cold[0]
        if load is None:
            return "MISS", None
        started = time.perf_counter()
        try:
            value = await load()
        finally:
            self._counts["loads"] += 1
            self._load_seconds += time.perf_counter() - started
        if value is None:
            return "MISS", None
        await self._write(key, bytes(value), now_us())
        return "MISS", value

    async def _redis_value(self, key: str, max_age_s: float | None) -> bytes | None:
        raw = await self._redis_call("GET", self._redis.get, key)
        unpacked = unpack(raw) if raw is not None else None
        if unpacked is None or not _fresh(unpacked[1], max_age_s):
            return None
        return unpacked[0]

    async def _admit(self, key: str, value: bytes, created_us: int) -> None:
        """A cold value into Redis, unless a newer one got there first (NX) or Redis refuses."""
        if len(value) > self.value_max_bytes:
            return
        import redis.exceptions

        try:
            await self._redis_call("SET", self._redis.set, key, pack(value, created_us), nx=True, raise_oom=True)
        except redis.exceptions.OutOfMemoryError:
            self._counts["admission_refused"] += 1

    # --- writes ------------------------------------------------------------------------------------------

    async def put(self, key: str, value: bytes) -> bool:
        """Stores `value` hot. False when it went cold instead: Redis refused it (OOM under noeviction),
        was unreachable, or the value is larger than MEMORY_VALUE_MAX_BYTES."""
        self._require_open()
        started = time.perf_counter()
        hot = await self._write(key, bytes(value), now_us())
        self._record(key, "SET", "HOT" if hot else "COLD", len(value), started)
        return hot

    async def _write(self, key: str, value: bytes, created_us: int) -> bool:
        import redis.exceptions

        if len(value) > self.value_max_bytes:
            self._counts["oversize_writes"] += 1
        else:
            try:
                if await self._redis_call("SET", self._redis.set, key, pack(value, created_us), raise_oom=True,
                                          default=False):
                    self._counts["writes_hot"] += 1
                    return True
            except redis.exceptions.OutOfMemoryError:
                self._counts["refused_writes"] += 1
        await self._cold_upsert(key, value, created_us)
        self._counts["writes_cold"] += 1
        return False

    async def demote(self, key: str) -> bool:
        """Moves the key's value from Redis to cold_store: copied (UPSERT) first, then deleted from Redis
        only if it still holds what was copied. False when the key is not in Redis or changed meanwhile
        (then it stays hot). ServiceUnavailable when Redis or Postgres is down."""
        self._require_open()
        raw = await self._redis_strict(self._redis.get, key)
        unpacked = unpack(raw) if raw is not None else None
        if unpacked is None:
            return False
        await self._cold_upsert(key, unpacked[0], unpacked[1])
        deleted = await self._redis_strict(self._compare_and_delete, keys=[key], args=[raw])
        self._counts["demotions" if deleted else "demote_conflicts"] += 1
        return bool(deleted)

    async def drop(self, key: str) -> bool:
        """Deletes the key from both tiers (Redis first); True when either held it."""
        self._require_open()
        started = time.perf_counter()
        hot = await self._redis_strict(self._redis.unlink, key)
        with postgres_errors():
            async with self._pool.connection() as conn:
                cold = (await conn.execute(COLD_DELETE, (key,))).rowcount
        self._counts["drops"] += 1
        self._record(key, "DELETE", "HOT" if hot else "COLD" if cold else "MISS", 0, started)
        return bool(hot or cold)

    # --- the tiers ---------------------------------------------------------------------------------------

    async def _cold_read(self, key: str) -> tuple[bytes, int] | None:
        with postgres_errors():
            async with self._pool.connection() as conn:
                row = await (await conn.execute(COLD_READ, (key,))).fetchone()
        if row is None:
            return None
        value, updated_at = row
        return bytes(value), int(updated_at.timestamp() * 1e6)

    async def _cold_upsert(self, key: str, value: bytes, created_us: int) -> None:
        created = datetime.fromtimestamp(created_us / 1e6, timezone.utc)
        with postgres_errors():
            async with self._pool.connection() as conn:
                await conn.execute(COLD_UPSERT, (key, value, len(value), created))

    async def _redis_call(self, what: str, call, *args, default=None, raise_oom: bool = False, **kwargs):
        """`call` on Redis, or `default` while it is down (degraded: the caller goes to Postgres)."""
        import redis.exceptions

        if time.monotonic() < self._redis_down_until:
            return default
        try:
            result = await call(*args, **kwargs)
        except redis.exceptions.OutOfMemoryError:
            if raise_oom:
                raise
            return default
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            self._counts["redis_errors"] += 1
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            if self._redis_down_since is None:
                self._redis_down_since = time.monotonic()
                log.warning("memory store (%s): Redis is unavailable (%s on %s); reads and writes go to Postgres "
                            "until it is back", self.agent, first_line(error), what)
            return default
        if self._redis_down_since is not None:
            log.warning("memory store (%s): Redis is back after %.1f s", self.agent,
                        time.monotonic() - self._redis_down_since)
            self._redis_down_since = None
        return result

    async def _redis_strict(self, call, *args, **kwargs):
        """`call` on Redis; ServiceUnavailable when it is down (demote and drop need Redis)."""
        import redis.exceptions

        try:
            return await call(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            self._counts["redis_errors"] += 1
            raise ServiceUnavailable(REDIS, first_line(error)) from error

    def _require_open(self) -> None:
        if self._redis is None:
            raise ServiceUnavailable("memory store", "not open (call TieredStore.open() first)")

    def _record(self, key: str, op: str, tier: str, size: int, started: float) -> None:
        if self.access_log is not None:
            self.access_log.record(key, op, tier, size, int((time.perf_counter() - started) * 1e6))


__all__ = ["AccessLog", "TieredStore", "dumps", "pack", "unpack"]
