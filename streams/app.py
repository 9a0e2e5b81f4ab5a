"""The Faust app, defined once. Agent modules import `app` and the topic helpers from here.

Agents consume raw bytes and decode themselves (`decode_or_dead_letter`), so a message that does
not decode is dead-lettered with its topic, partition, offset and raw bytes instead of being
dropped by Faust. Topics the agents produce to carry an Avro codec. A service that is down (the
registry, Postgres) is waited for, never blamed on the message (streams.outages).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

import faust

from streams.bus.codecs import AvroCodec, CodecRegistry, FaustAvroCodec
from streams.bus.deadletter import dead_letter_record
from streams.bus.gaps import StreamGaps, committed_offsets, read_range
from streams.errors import CodecError, ServiceUnavailable
from streams.outages import until_available
from streams.settings import get_settings

settings = get_settings()  # the worker is named on the command line: streams.settings.configure
log = logging.getLogger("algo")
for _client in ("httpx", "httpx2"):  # one line per registry request is noise
    logging.getLogger(_client).setLevel(logging.WARNING)

(settings.run_dir / "faust").mkdir(parents=True, exist_ok=True)
app = faust.App(
    f"{settings.app_id}-{settings.worker}",
    broker=settings.faust_broker,
    store="memory://",
    # Faust's default is a folder per app id in the current directory; tests create hundreds of app ids
    datadir=str(settings.run_dir / "faust" / "{conf.id}-data"),
    autodiscover=False,
    topic_replication_factor=settings.replication_factor,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset=settings.offset_reset,
    web_enabled=False,
    producer_acks=-1,
    broker_commit_interval=settings.commit_interval_s,
    producer_linger=settings.producer_linger_ms / 1000.0,
    table_cleanup_interval=60.0,
    # A standby copy of another worker's partitions would sit in the same in-memory store, and the
    # timers that read a table's items (idle bars, the consensus and risk mirrors) would act on
    # symbols this worker does not own. The tables are small and compacted: a worker that takes a
    # partition over rebuilds it from the changelog.
    table_standby_replicas=0,
    **({"broker_credentials": faust.SASLCredentials(
        username=settings.kafka_principal, password=settings.password(settings.kafka_principal),
        mechanism="SCRAM-SHA-512", ssl_context=settings.aiokafka_config()["ssl_context"])}
       if settings.profile == "secure" else {}),
)

codecs = CodecRegistry(settings.schema_registry_url)


async def encode_when_available(codec: AvroCodec, record: dict) -> bytes:
    """The encoded record; while the registry is down (a schema not cached yet) the caller waits."""
    try:
        return codec.encode(record)  # inline: after the first record the schema id is cached
    except ServiceUnavailable:
        return await until_available(asyncio.to_thread, codec.encode, record, what=f"encoding for {codec.spec.name}")


class AvroTopic(faust.Topic):
    """Encodes a dict value before Faust sees it, so a registry outage makes the sender wait instead
    of failing inside Faust's producer."""

    async def send(self, *, value=None, value_serializer=None, **kwargs):
        if isinstance(value, dict):
            value = await encode_when_available(codecs.for_topic(self.get_topic_name()), value)
            value_serializer = "raw"
        try:
            return await super().send(value=value, value_serializer=value_serializer, **kwargs)
        except faust.exceptions.NotReady:
            # a timer still running while the worker stops (its producer already stopped): the send is
            # cancelled with the timer, which Faust takes as a normal end, not a crash
            if app.should_stop:
                raise asyncio.CancelledError(f"{self.get_topic_name()}: the worker is stopping") from None
            raise


def avro_topic(name: str) -> faust.TopicT:
    """A topic whose values are encoded with the topic's registered Avro schema."""
    return AvroTopic(app, topics=[name], key_serializer="raw", value_serializer=FaustAvroCodec(codecs.for_topic(name)))


def raw_topic(name: str) -> faust.TopicT:
    """A topic consumed as raw bytes, decoded by the agent so failures can be dead-lettered."""
    return app.topic(name, key_serializer="raw", value_serializer="raw")


dead_letter_topic = avro_topic("dead-letter")


# Faust 0.15.3 can skip a message of a partition it hands over in a rebalance (streams.bus.gaps):
# each stream read through events_without_gaps notes what it yielded per partition, and where each
# newly assigned partition starts (its committed offset, read at the assignment), and reads back
# what the consumer skipped.
_gap_guards: list[StreamGaps] = []
_partition_starts: dict[tuple[str, int], int] = {}
_assignment: dict = {"partitions": set(), "ready": None}


@app.on_partitions_assigned.connect
async def note_partition_starts(sender, assigned, **_kwargs) -> None:
    guarded = {topic for guard in _gap_guards for topic in guard.topics}
    keys = {(tp.topic, tp.partition) for tp in assigned if tp.topic in guarded}
    newly = keys - _assignment["partitions"]
    _assignment["partitions"] = keys
    ready = _assignment["ready"] = asyncio.Event()  # a stream's events wait until the starts are known
    for guard in _gap_guards:
        guard.forget(newly)
    for key in newly:
        _partition_starts.pop(key, None)
    try:
        _partition_starts.update(await asyncio.wait_for(
            asyncio.to_thread(committed_offsets, settings.kafka_config(), app.conf.id, newly), 20))
    except (ServiceUnavailable, asyncio.TimeoutError) as error:
        log.warning("cannot read where the newly assigned partitions start (%s): a message the consumer skips "
                    "there now goes unnoticed", error)
    finally:
        ready.set()


async def _read_back(guard: StreamGaps, event: faust.EventT, agent: str) -> list:
    message = event.message
    ready = _assignment["ready"]
    if ready is not None and not ready.is_set():
        await ready.wait()
    missing = guard.missing(message.topic, message.partition, message.offset)
    if missing is None:
        return []
    fetched = await until_available(asyncio.to_thread, read_range, settings.kafka_config(), message.topic,
                                    message.partition, *missing,
                                    what=f"{agent} reading back {message.topic}[{message.partition}]")
    log.warning("%s: the stream skipped %s[%s] offsets %d..%d; %d message(s) read back from the broker", agent,
                message.topic, message.partition, missing[0], missing[1] - 1, len(fetched))
    return fetched


def _guard(stream) -> StreamGaps:
    guard = StreamGaps(starts=_partition_starts, topics=frozenset(getattr(stream.channel, "topics", ())))
    _gap_guards.append(guard)
    return guard


async def events_without_gaps(stream, agent: str):
    """stream.events(), with any message the consumer skipped read back from the broker and yielded
    before the one after it. A read-back message is a streams.bus.gaps.FetchedEvent (its .message
    has topic, partition, offset, key and value, as the dead-letter helpers need)."""
    guard = _guard(stream)
    async for event in stream.events():
        for fetched in await _read_back(guard, event, agent):
            yield fetched
        yield event


async def batches_without_gaps(stream, size: int, within: float, agent: str):
    """stream.take_events(size, within), each batch with the messages the consumer skipped read back
    and put before the one after them."""
    guard = _guard(stream)
    async for events in stream.take_events(size, within=within):
        batch = []
        for event in events:
            batch.extend(await _read_back(guard, event, agent))
            batch.append(event)
        yield batch


async def send_dead_letter(event: faust.EventT, agent: str, error: Exception) -> None:
    message = event.message
    record = dead_letter_record(
        topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, agent=agent, error=error,
    )
    log.warning("dead-letter %s[%s]@%s by %s: %s", message.topic, message.partition, message.offset, agent, error)
    await dead_letter_topic.send(key=message.topic.encode(), value=record)


async def decode_or_dead_letter(event: faust.EventT, agent: str) -> dict | None:
    """The decoded record, or None after dead-lettering a message that is malformed. While the
    registry is down the agent waits here (its stream pauses) and decodes once it is back."""
    codec, value = codecs.for_topic(event.message.topic), event.message.value
    try:
        try:
            return codec.decode(value)  # inline: the writer's schema is cached after its first message
        except ServiceUnavailable:
            pass  # then in a thread, so a registry that times out does not block the event loop
        return await until_available(asyncio.to_thread, codec.decode, value,
                                     what=f"{agent} decoding {event.message.topic}")
    except CodecError as error:
        await send_dead_letter(event, agent, error)
        return None


async def decode_bar_or_dead_letter(event: faust.EventT, agent: str) -> dict | None:
    """A market.bars record of this deployment's BAR_INTERVAL, or None (dead-lettered when it does
    not decode; bars of other intervals are not for these agents)."""
    bar = await decode_or_dead_letter(event, agent)
    return bar if bar is not None and bar["interval"] == settings.bar_interval else None


@contextlib.asynccontextmanager
async def dead_letter_on_failure(event: faust.EventT, agent: str) -> AsyncIterator[None]:
    """Around one message's handling: an error of the message's own (bad input, a refused row, a
    bug it triggers) dead-letters it with the reason and the agent goes on with the next message,
    instead of the exception ending the agent. A ServiceUnavailable is not the message's fault and
    is re-raised: the step that met it should have waited with `until_available`."""
    try:
        yield
    except ServiceUnavailable:
        raise
    except Exception as error:  # noqa: BLE001 - whatever it is, one message must not stop the agent
        log.exception("%s: %s[%s]@%s failed", agent, event.message.topic, event.message.partition,
                      event.message.offset)
        await send_dead_letter(event, agent, error)
