"""The Faust app, defined once. Agent modules import `app` and the topic helpers from here.

Agents consume raw bytes and decode themselves (`decode_or_dead_letter`), so a message that does
not decode is dead-lettered with its topic, partition, offset and raw bytes instead of being
dropped by Faust. Topics the agents produce to carry an Avro codec.
"""
from __future__ import annotations

import logging
import os

import faust

from streams.bus.codecs import CodecRegistry, FaustAvroCodec
from streams.bus.deadletter import dead_letter_record
from streams.errors import CodecError
from streams.settings import get_settings

settings = get_settings()
worker_name = os.environ.get("ALGO_WORKER", "all")
log = logging.getLogger("algo")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry request is noise

app = faust.App(
    f"{settings.app_id}-{worker_name}",
    broker=settings.faust_broker,
    store="memory://",
    autodiscover=False,
    topic_replication_factor=1,
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset=settings.offset_reset,
    web_enabled=False,
    producer_acks=-1,
    table_cleanup_interval=60.0,
)

codecs = CodecRegistry(settings.schema_registry_url)


def avro_topic(name: str) -> faust.TopicT:
    """A topic whose values Faust encodes with the topic's registered Avro schema."""
    return app.topic(name, key_serializer="raw", value_serializer=FaustAvroCodec(codecs.for_topic(name)))


def raw_topic(name: str) -> faust.TopicT:
    """A topic consumed as raw bytes, decoded by the agent so failures can be dead-lettered."""
    return app.topic(name, key_serializer="raw", value_serializer="raw")


dead_letter_topic = avro_topic("dead-letter")


async def send_dead_letter(event: faust.EventT, agent: str, error: Exception) -> None:
    message = event.message
    record = dead_letter_record(
        topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, agent=agent, error=error,
    )
    log.warning("dead-letter %s[%s]@%s by %s: %s", message.topic, message.partition, message.offset, agent, error)
    await dead_letter_topic.send(key=message.topic.encode(), value=record)


async def decode_or_dead_letter(event: faust.EventT, agent: str) -> dict | None:
    """The decoded record, or None after dead-lettering a message that does not decode."""
    try:
        return codecs.for_topic(event.message.topic).decode(event.message.value)
    except CodecError as error:
        await send_dead_letter(event, agent, error)
        return None
