"""The bridge's Kafka -> websocket hub: one shared consumer, ring buffers for resume, bounded fan-out.

- One aiokafka consumer per bridge process, without a consumer group: it is assigned every
  partition of each topic some client has asked for (a topic, once asked for, stays assigned) and
  starts at the end offsets it resolves before acknowledging the subscription, so a client that has
  its `subscribed` reply sees every message published after it.
- Each message is decoded once with the topic's Avro codec and serialised to JSON once:
  `{"type": "event", "id", "topic", "key", "partition", "offset", "timestamp", "value"}`; the same
  UTF-8 payload goes to every client that wants it, as a text frame written by aiohttp (send_frame).
- Event ids increase monotonically, also across restarts (they start at the start time in
  microseconds). The last `ring_size` events of each topic stay in memory; a client subscribing with
  `"since": <id>` first gets the buffered events after that id (and a `gap` notice when some were
  already evicted), then live ones.
- Every client has a bounded queue (`queue_size` events) drained by its own writer task. A client
  whose queue is full when a live event arrives is too slow: it is disconnected with close code
  1013 (try again later) and can reconnect and resume with `since`. Nobody else waits for it, and its
  memory is bounded by the queue (plus the replay it asked for, itself bounded by the rings).
"""
from __future__ import annotations

import asyncio
import collections
import heapq
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from aiohttp import WSMsgType
from tenacity import (
    AsyncRetrying, RetryCallState, retry_if_exception_type, retry_if_not_exception_type, wait_exponential,
)

from streams.bridge.models import SYMBOL_RE
from streams.bridge.metrics import BridgeMetrics
from streams.bus.codecs import CodecRegistry
from streams.errors import AlgoError, CodecError
from streams.settings import Settings
from streams.bus.tail import to_json_value
from streams.bus.topics import BY_NAME

log = logging.getLogger("algo.bridge.stream")

CLOSE_TRY_AGAIN_LATER = 1013
MAX_SYMBOLS_PER_SUBSCRIPTION = 1000


class HubUnavailable(AlgoError):
    """Kafka (or a topic) is not reachable, so a subscription cannot be served now."""


class _SessionLost(Exception):
    """A consumer session that had connected failed: reconnect with a fresh backoff."""


class CommandError(AlgoError):
    """A websocket client sent something that is not a valid command."""


@dataclass
class Event:
    id: int
    topic: str
    symbols: frozenset[str] | None  # what the event is about; None when it carries no symbol
    text: str                       # the JSON sent to clients
    payload: bytes = field(init=False, repr=False)  # `text` as UTF-8, encoded once for every client

    def __post_init__(self) -> None:
        self.payload = self.text.encode()


@dataclass(frozen=True)
class Command:
    action: str                          # subscribe | unsubscribe | ping
    topics: tuple[str, ...] = ()
    symbols: frozenset[str] | None = None  # None: every symbol
    since: int | None = None


def parse_command(text: str | bytes) -> Command:
    """A client's JSON message -> Command; CommandError says what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise CommandError("not JSON: send {\"action\": \"subscribe\", \"topics\": [...], \"symbols\": [...]}") from None
    if not isinstance(data, dict):
        raise CommandError("expected a JSON object with an action")
    action = data.get("action")
    if action == "ping":
        return Command("ping")
    if action not in ("subscribe", "unsubscribe"):
        raise CommandError(f"unknown action {str(action)[:40]!r}: use subscribe, unsubscribe or ping")
    unknown = set(data) - {"action", "topics", "symbols", "since"}
    if unknown:
        raise CommandError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))[:120]}: "
                           "use action, topics, symbols, since")
    topics = data.get("topics")
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
        raise CommandError("topics: a non-empty list of topic names")
    bad = [t for t in topics if t not in BY_NAME]
    if bad:
        raise CommandError(f"unknown topic {bad[0][:60]!r}; known: {', '.join(BY_NAME)}")
    symbols = data.get("symbols")
    if symbols is None or symbols == []:
        symbol_set = None
    else:
        if isinstance(symbols, str):
            symbols = [symbols]
        if not isinstance(symbols, list) or len(symbols) > MAX_SYMBOLS_PER_SUBSCRIPTION:
            raise CommandError(f"symbols: a list of at most {MAX_SYMBOLS_PER_SUBSCRIPTION} symbols")
        for s in symbols:
            if not isinstance(s, str) or not SYMBOL_RE.fullmatch(s):
                raise CommandError(f"symbols: {str(s)[:40]!r} is not a symbol (1-32 of A-Z a-z 0-9 . ^ = : / _ -)")
        symbol_set = frozenset(symbols)
    since = data.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise CommandError("since: a non-negative event id")
    return Command(action, tuple(dict.fromkeys(topics)), symbol_set, since)


def event_symbols(topic: str, key: str | None, value: Any) -> frozenset[str] | None:
    """The symbols an event is about: the key where the topic is keyed by symbol, value.symbol(s)."""
    found: set[str] = set()
    spec = BY_NAME.get(topic)
    if spec is not None and spec.key == "symbol" and key:
        found.add(key)
    if isinstance(value, dict):
        symbol = value.get("symbol")
        if isinstance(symbol, str):
            found.add(symbol)
        many = value.get("symbols")
        if isinstance(many, list):
            found.update(s for s in many if isinstance(s, str))
    return frozenset(found) if found else None


def _scrub(value: Any) -> Any:
    """NaN and infinities become null: browsers' JSON.parse refuses them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def dumps(payload: dict) -> str:
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_scrub(payload), separators=(",", ":"), allow_nan=False)


def _control(kind: str, **fields) -> Event:
    return Event(0, "", None, dumps({"type": kind, **fields}))


# Frames up to this size are written inline by the hub's flusher when a client's socket has nothing
# buffered: asyncio pauses a transport only above 64 KiB buffered, so such a send never waits.
INLINE_FRAME_BYTES = 16 * 1024


class Client:
    """One websocket connection: its filters and its bounded queue of events to send.

    Events are sent with aiohttp's `send_frame` (each event's payload encoded once, for every
    client). While a client keeps up (nothing buffered on its socket), the hub's flusher sends its
    queue inline, one pass over every ready client per batch of events, so a fan-out to many clients
    wakes one task, not one per client. A client whose socket has data buffered gets a writer task of
    its own, which waits on aiohttp's flow control while its queue fills; a full queue gets it
    dropped (see StreamHub._drop_slow), so nobody else waits for it."""

    def __init__(self, ws, hub: "StreamHub", queue_size: int, peer: str = "", transport=None) -> None:
        self.ws = ws
        self.hub = hub
        self.transport = transport  # asyncio's, only to see whether the peer keeps up
        self.queue_size = queue_size
        self.peer = peer
        self.filters: dict[str, frozenset[str] | None] = {}
        self.pending: collections.deque[tuple[Event, float]] = collections.deque()
        self.closed = False
        self.writing = False  # the writer task owns the queue until it is empty
        self.sent = 0
        self._wake = asyncio.Event()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._writer(), name=f"ws-writer {self.peer}")

    def offer(self, event: Event, received: float, *, force: bool = False) -> bool:
        """Queues an event; False when the queue is full (the client is too slow). `force`: control
        messages and replays, bounded by the rings, go in regardless."""
        if self.closed:
            return True
        if not force and len(self.pending) >= self.queue_size:
            return False
        self.pending.append((event, received))
        if not self.writing:
            self.hub._ready(self)
        return True

    def wants(self, event: Event) -> bool:
        if event.topic not in self.filters:
            return False
        wanted = self.filters[event.topic]
        return wanted is None or event.symbols is None or not wanted.isdisjoint(event.symbols)

    def _keeping_up(self, event: Event) -> bool:
        transport = self.transport
        return (transport is not None and not transport.is_closing() and transport.get_write_buffer_size() == 0
                and len(event.payload) <= INLINE_FRAME_BYTES)

    async def flush(self) -> None:
        """Sends the queue inline while the socket keeps up; hands the rest to the writer task."""
        pending = self.pending
        try:
            while pending and not self.closed and not self.writing:
                event, received = pending[0]
                if not self._keeping_up(event):
                    self.writing = True
                    self._wake.set()
                    return
                pending.popleft()
                await self.ws.send_frame(event.payload, WSMsgType.TEXT)  # does not wait: see INLINE_FRAME_BYTES
                self._sent(event, received)
        except Exception as error:  # the peer went away mid-send; the reader side cleans up
            log.debug("websocket %s: send failed: %s", self.peer, error)
            self.closed = True

    def _sent(self, event: Event, received: float) -> None:
        self.sent += 1
        metrics = self.hub.metrics
        if metrics is not None:
            metrics.ws_sent.inc()
            if event.id:
                metrics.fanout_seconds.observe(time.perf_counter() - received)

    async def _writer(self) -> None:
        pending = self.pending
        try:
            while not self.closed:
                if not self.writing or not pending:
                    self.writing = False
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                event, received = pending.popleft()
                await self.ws.send_frame(event.payload, WSMsgType.TEXT)  # waits while the peer is not reading
                self._sent(event, received)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the peer went away mid-send; the reader side cleans up
            log.debug("websocket %s: send failed: %s", self.peer, error)
            self.closed = True

    async def stop(self) -> None:
        self.closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass


PartitionLookup = Callable[[str], list[int]]


class StreamHub:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics: BridgeMetrics | None = None,
        ring_size: int = 1000,
        queue_size: int = 1000,
        heartbeat_s: float = 15.0,
        max_clients: int = 10_000,
        kafka: bool = True,
        codecs: CodecRegistry | None = None,
        partitions_of: PartitionLookup | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ring_size = ring_size
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.max_clients = max_clients
        self.kafka = kafka
        self.codecs = codecs or CodecRegistry(settings.schema_registry_url)
        self._partitions_of = partitions_of or self._admin_partitions
        self.clients: set[Client] = set()
        self._by_topic: dict[str, set[Client]] = collections.defaultdict(set)
        self._rings: dict[str, collections.deque[Event]] = {}
        self._evicted: dict[str, int] = {}
        self._start_id = time.time_ns() // 1000
        self.last_id = self._start_id
        self.active: set[str] = set()
        self._pending: dict[str, asyncio.Future] = {}
        self._positions: dict[Any, int] = {}
        self._tasks: list[asyncio.Task] = []
        self._admin = None
        self.connected = asyncio.Event()
        self._wakeup = asyncio.Event()
        self.last_error: str | None = None
        self._stopping = False
        self._to_flush: dict[Client, None] = {}  # clients with queued events, in order
        self._flush_wake = asyncio.Event()
        self._flusher: asyncio.Task | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.kafka:
            self._tasks.append(loop.create_task(self._consume_forever(), name="bridge-consumer"))
        if self.heartbeat_s > 0:
            self._tasks.append(loop.create_task(self._heartbeats(), name="bridge-heartbeats"))

    async def stop(self) -> None:
        self._stopping = True
        if self._flusher is not None:
            self._tasks.append(self._flusher)
            self._flusher = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for client in list(self.clients):
            await client.stop()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HubUnavailable("the bridge is stopping"))
        self._admin = None  # an AdminClient has no close(): dropping the last reference destroys it

    # --- clients ------------------------------------------------------------------------------------------

    def _ready(self, client: Client) -> None:
        """`client` has events queued: the flusher sends them on its next pass."""
        self._to_flush[client] = None
        self._flush_wake.set()
        if self._flusher is None and not self._stopping:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="ws-flusher")

    async def _flush_forever(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            await self._flush_ready()

    async def _flush_ready(self) -> None:
        ready, self._to_flush = self._to_flush, {}
        for client in ready:
            await client.flush()

    def attach(self, ws, peer: str = "", transport=None) -> Client:
        """A new client on websocket `ws` (an aiohttp WebSocketResponse, prepared); `transport`, the
        connection's, tells the flusher whether the client keeps up (without it, the writer task sends)."""
        if len(self.clients) >= self.max_clients:
            raise HubUnavailable(f"too many websocket clients (limit {self.max_clients})")
        client = Client(ws, self, self.queue_size, peer, transport)
        self.clients.add(client)
        client.start()
        if self.metrics is not None:
            self.metrics.ws_clients.set(len(self.clients))
            self.metrics.ws_connections.inc()
        client.offer(_control("hello", last_id=self.last_id, queue_size=self.queue_size, ring_size=self.ring_size,
                              heartbeat_s=self.heartbeat_s, topics=sorted(BY_NAME)), 0.0, force=True)
        return client

    async def detach(self, client: Client) -> None:
        self._forget(client)
        await client.stop()

    def _forget(self, client: Client) -> None:
        for topic in client.filters:
            self._by_topic[topic].discard(client)
        self.clients.discard(client)
        if self.metrics is not None:
            self.metrics.ws_clients.set(len(self.clients))

    def _drop_slow(self, client: Client) -> None:
        behind = len(client.pending)
        log.warning("websocket %s: dropped, %d events behind (queue of %d full)", client.peer, behind, self.queue_size)
        if self.metrics is not None:
            self.metrics.ws_dropped_clients.inc()
            self.metrics.ws_dropped_messages.inc(behind + 1)
        self._forget(client)
        client.closed = True
        client.pending.clear()

        async def close() -> None:
            await client.stop()
            try:
                await asyncio.wait_for(
                    client.ws.close(code=CLOSE_TRY_AGAIN_LATER,
                                    message=f"too slow: {behind} events behind; reconnect with since".encode()[:120]),
                    timeout=5)
            except Exception:
                pass

        asyncio.get_running_loop().create_task(close())

    async def handle(self, client: Client, text: str | bytes) -> None:
        """One message from a client: acts on it and queues the reply (errors are replies, not exceptions)."""
        try:
            command = parse_command(text)
            if command.action == "ping":
                client.offer(_control("pong", last_id=self.last_id), 0.0, force=True)
            elif command.action == "subscribe":
                await self.ensure_topics(command.topics)
                if not client.closed:
                    self.subscribe(client, command)
            else:
                self.unsubscribe(client, command)
        except (CommandError, HubUnavailable) as error:
            client.offer(_control("error", error=str(error)), 0.0, force=True)

    def subscribe(self, client: Client, command: Command) -> int:
        """Sets the client's filter for each topic (replacing an earlier one), queues the ack, then the
        buffered events after `since`; synchronous, so no live event can slip in between."""
        for topic in command.topics:
            client.filters[topic] = command.symbols
            self._by_topic[topic].add(client)
        replay: list[Event] = []
        gaps = []
        if command.since is not None:
            rings = []
            for topic in command.topics:
                ring = self._rings.get(topic, ())
                if self._evicted.get(topic, 0) > command.since:
                    gaps.append({"topic": topic, "oldest_id": ring[0].id if ring else None})
                rings.append([e for e in ring if e.id > command.since and client.wants(e)])
            replay = list(heapq.merge(*rings, key=lambda e: e.id))
        client.offer(_control(
            "subscribed", topics={t: sorted(s) if s is not None else None for t, s in client.filters.items()},
            last_id=self.last_id, replayed=len(replay), since=command.since), 0.0, force=True)
        for gap in gaps:
            client.offer(_control("gap", since=command.since, **gap), 0.0, force=True)
        now = time.perf_counter()
        for event in replay:
            client.offer(event, now, force=True)
        return len(replay)

    def unsubscribe(self, client: Client, command: Command) -> None:
        for topic in command.topics:
            if topic not in client.filters:
                continue
            current = client.filters[topic]
            if command.symbols is None:
                del client.filters[topic]
            elif current is not None:
                left = current - command.symbols
                if left:
                    client.filters[topic] = left
                else:
                    del client.filters[topic]
            if topic not in client.filters:
                self._by_topic[topic].discard(client)
        client.offer(_control(
            "unsubscribed", topics={t: sorted(s) if s is not None else None for t, s in client.filters.items()}),
            0.0, force=True)

    # --- events -------------------------------------------------------------------------------------------

    def emit(self, topic: str, key: str | None, partition: int, offset: int, timestamp: int | None, value: Any,
             error: str | None = None, received: float | None = None) -> Event:
        """Numbers, buffers and fans out one decoded message (also the entry point for tests)."""
        self.last_id += 1
        payload = {"type": "event", "id": self.last_id, "topic": topic, "key": key, "partition": partition,
                   "offset": offset, "timestamp": timestamp, "value": to_json_value(value) if value is not None else None}
        if error is not None:
            payload["error"] = error
        event = Event(self.last_id, topic, event_symbols(topic, key, value), dumps(payload))
        ring = self._rings.get(topic)
        if ring is None:
            ring = self._rings[topic] = collections.deque(maxlen=self.ring_size)
        if len(ring) == ring.maxlen:
            self._evicted[topic] = ring[0].id
        ring.append(event)
        received = time.perf_counter() if received is None else received
        slow = None
        for client in self._by_topic.get(topic, ()):
            if client.wants(event) and not client.offer(event, received):
                (slow := slow or []).append(client)
        for client in slow or ():
            self._drop_slow(client)
        return event

    def recent(self, topic: str) -> list[Event]:
        return list(self._rings.get(topic, ()))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            beat = _control("heartbeat", ts=datetime.now(timezone.utc).isoformat(), last_id=self.last_id,
                            kafka=self.connected.is_set())
            for client in list(self.clients):
                client.offer(beat, 0.0, force=len(client.pending) < self.queue_size)

    # --- Kafka --------------------------------------------------------------------------------------------

    async def ensure_topics(self, topics: Iterable[str], timeout: float = 15.0) -> None:
        """Returns once every topic is assigned and positioned at its end (or was already)."""
        missing = [t for t in topics if t not in self.active]
        if not missing:
            return
        if not self.kafka:
            self.active.update(missing)
            return
        loop = asyncio.get_running_loop()
        futures = []
        for topic in missing:
            future = self._pending.get(topic)
            if future is None or future.done():
                future = self._pending[topic] = loop.create_future()
            futures.append(future)
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*futures)), timeout)
        except asyncio.TimeoutError:
            raise HubUnavailable(f"Kafka did not answer within {timeout:.0f} s"
                                 f"{': ' + self.last_error if self.last_error else ''}") from None

    def _admin_partitions(self, topic: str) -> list[int]:
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient(self.settings.kafka_config({"log_level": 3}))
        metadata = self._admin.list_topics(topic, timeout=5)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise HubUnavailable(f"topic {topic} is not there ({info.error.str() if info else 'no metadata'}); "
                                 "run `algo provision`")
        return sorted(info.partitions)

    async def _consume_forever(self) -> None:
        """Consumes until stopped. Failing to connect is retried with backoff (0.5 s doubling up to
        10 s); a session that had connected and then failed reconnects at once, with a fresh backoff."""
        while not self._stopping:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(_SessionLost),
                wait=wait_exponential(multiplier=0.5, min=0.5, max=10), before_sleep=self._log_retry)
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._consume_session()
            except _SessionLost as lost:
                log.warning("bridge consumer: %s; reconnecting", lost)

    def _log_retry(self, state: RetryCallState) -> None:
        log.warning("bridge consumer: %s; retrying in %.1f s", self.last_error, state.upcoming_sleep)

    async def _consume_session(self) -> None:
        """One consumer, from connecting until it fails (it never returns otherwise)."""
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            **self.settings.aiokafka_config(), group_id=None,
            enable_auto_commit=False, auto_offset_reset="latest", fetch_max_wait_ms=100,
            max_partition_fetch_bytes=1 << 20, client_id=f"{self.settings.app_id}-bridge")
        connected = False
        try:
            await consumer.start()
            connected = True
            self.connected.set()
            self.last_error = None
            if self._positions:  # after a reconnect: carry on where we were
                consumer.assign(list(self._positions))
                for tp, position in self._positions.items():
                    consumer.seek(tp, position)
            while True:
                if self._pending:
                    await self._activate(consumer)
                if not self._positions:  # nothing asked for yet: wait for a first subscription
                    self._wakeup.clear()
                    if not self._pending:
                        try:
                            await asyncio.wait_for(self._wakeup.wait(), 5.0)
                        except asyncio.TimeoutError:
                            pass
                    continue
                batches = await consumer.getmany(timeout_ms=100, max_records=2000)
                if batches:
                    await self._dispatch(batches)
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            if connected:
                raise _SessionLost(self.last_error) from error
            raise
        finally:
            self.connected.clear()
            try:
                await consumer.stop()
            except Exception:
                pass

    async def _activate(self, consumer) -> None:
        from aiokafka import TopicPartition

        pending = dict(self._pending)
        new, failures = [], {}
        for topic in pending:
            try:
                partitions = await asyncio.to_thread(self._partitions_of, topic)
                new.extend(TopicPartition(topic, p) for p in partitions)
            except Exception as error:
                failures[topic] = error if isinstance(error, HubUnavailable) else HubUnavailable(f"{topic}: {error}")
        if new:
            ends = await asyncio.wait_for(consumer.end_offsets(new), 15)
            consumer.assign(list(self._positions) + new)
            for tp, position in self._positions.items():
                consumer.seek(tp, position)
            for tp in new:
                consumer.seek(tp, ends[tp])
                self._positions[tp] = ends[tp]
        for topic in pending:
            if topic not in failures:
                await asyncio.to_thread(self._prewarm, topic)
        for topic, future in pending.items():
            if self._pending.get(topic) is future:
                del self._pending[topic]
            if future.done():
                continue
            if topic in failures:
                future.set_exception(failures[topic])
                future.exception()  # retrieved: a client may have given up waiting
            else:
                self.active.add(topic)
                future.set_result(None)

    def _prewarm(self, topic: str) -> None:
        """Fetches the topic's latest writer schema now, so its first event does not wait on the registry."""
        try:
            codec = self.codecs.for_topic(topic)
            client = self.codecs.client
            latest = client.get_latest_version(codec.spec.subject)
            client.get_schema(latest.schema_id)
        except Exception as error:  # only an optimisation: decoding fetches what it needs anyway
            log.debug("prewarm %s: %s", topic, error)

    async def _dispatch(self, batches: dict) -> None:
        received = time.perf_counter()
        decoded = await asyncio.to_thread(self._decode, batches)
        for tp, topic, key, partition, offset, timestamp, value, error in decoded:
            self._positions[tp] = offset + 1
            if self.metrics is not None:
                self.metrics.events.labels(topic).inc()
                if error is not None:
                    self.metrics.decode_errors.labels(topic).inc()
            self.emit(topic, key, partition, offset, timestamp, value, error, received)
            # sent before the next one is queued: a batch larger than a client's queue must not
            # look like a slow client
            await self._flush_ready()

    def _decode(self, batches: dict) -> list[tuple]:
        out = []
        for tp, messages in batches.items():
            codec = self.codecs.for_topic(tp.topic)
            for message in messages:
                try:
                    value, error = codec.decode(message.value), None
                except CodecError as failure:
                    value, error = None, str(failure)
                key = message.key.decode("utf-8", errors="replace") if message.key is not None else None
                out.append((tp, tp.topic, key, tp.partition, message.offset, message.timestamp, value, error))
        return out
