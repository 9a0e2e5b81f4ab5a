"""`algo tail TOPIC`: decode any topic to JSON lines with a plain confluent-kafka consumer."""
from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Callable, Iterator

from confluent_kafka import Consumer, KafkaException

from streams.bus.codecs import decoding_outage, registry_client
from streams.errors import AlgoError, CodecError
from streams.settings import Settings


def to_json_value(value: object) -> object:
    """Avro-decoded values to JSON: timestamps as ISO 8601, bytes as base64."""
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def tail(
    settings: Settings, topic: str, *, from_beginning: bool = False, limit: int | None = None,
    idle_timeout: float | None = None, emit: Callable[[str], None] = print,
) -> int:
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserializer = AvroDeserializer(registry_client(settings.schema_registry_url))
    context = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer(settings.kafka_config({
        "group.id": f"algo-tail-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest" if from_beginning else "latest",
    }))
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        if metadata.topics[topic].error is not None:
            raise AlgoError(f"topic {topic!r} does not exist ({metadata.topics[topic].error.str()}); see `algo provision`")
        consumer.subscribe([topic])
        count = 0
        last_message = time.monotonic()
        for message in _poll(consumer):
            if message is None:
                if idle_timeout is not None and time.monotonic() - last_message > idle_timeout:
                    break
                continue
            last_message = time.monotonic()
            line = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                    "key": message.key().decode(errors="replace") if message.key() is not None else None}
            try:
                line["value"] = to_json_value(deserializer(message.value(), context))
            except Exception as error:  # a malformed message is shown, not fatal; a registry outage stops
                if (outage := decoding_outage(error)) is not None:
                    raise outage from error
                line["error"] = str(CodecError(str(error)))
                line["raw"] = base64.b64encode(message.value() or b"").decode()
            emit(json.dumps(line))
            count += 1
            if limit is not None and count >= limit:
                break
        return count
    except KafkaException as error:
        raise AlgoError(f"cannot read {topic}: {error}") from error
    finally:
        consumer.close()


def _poll(consumer: Consumer) -> Iterator:
    while True:
        message = consumer.poll(0.5)
        if message is not None and message.error():
            raise AlgoError(f"consumer error: {message.error()}")
        yield message
