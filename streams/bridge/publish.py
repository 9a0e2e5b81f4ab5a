"""Publishing for the bridge's REST API: Avro-encode through the registry, produce with confluent-kafka.

Keys are partitioned with murmur2 (`murmur2_random`), like Faust and the Java clients, so a symbol
published here lands on the same partition as the same symbol from `algo replay`. A request is
answered once the broker has acknowledged every message (acks=all) or a delivery failed.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Mapping

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from streams.bus.codecs import CodecRegistry
from streams.errors import RegistryError, ServiceUnavailable
from streams.outages import KAFKA, REGISTRY
from streams.settings import Settings

log = logging.getLogger("algo.bridge.publish")

# produce() raises BufferError while librdkafka's local queue is full: up to 1 s of short waits
_QUEUE_FULL_RETRIES = AsyncRetrying(retry=retry_if_exception_type(BufferError), stop=stop_after_attempt(50),
                                    wait=wait_fixed(0.02), reraise=True)


class PublishUnavailable(ServiceUnavailable):
    """Kafka or the registry could not take the messages now (the client may retry); `service` names which."""

    def __init__(self, detail: str, service: str = KAFKA) -> None:
        super().__init__(service, detail)

    def __reduce__(self):
        return type(self), (self.detail, self.service)


@dataclass(frozen=True)
class Delivered:
    key: str
    partition: int
    offset: int


class Publisher:
    """One confluent-kafka producer per bridge; a thread serves its delivery callbacks."""

    def __init__(self, settings: Settings, *, codecs: CodecRegistry | None = None,
                 topic_map: Mapping[str, str] | None = None, delivery_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.codecs = codecs or CodecRegistry(settings.schema_registry_url)
        self.topic_map = dict(topic_map or {})  # contract topic -> topic actually written (tests use scratch topics)
        self.delivery_timeout_s = delivery_timeout_s
        self._producer = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _ensure_producer(self):
        with self._lock:
            if self._producer is None:
                from confluent_kafka import Producer

                self._producer = Producer(self.settings.kafka_config({
                    "acks": "all", "partitioner": "murmur2_random", "linger.ms": 2,
                    "message.timeout.ms": int(self.delivery_timeout_s * 1000), "log_level": 3,
                    "client.id": f"{self.settings.app_id}-bridge",
                }))
                self._thread = threading.Thread(target=self._serve, name="bridge-producer", daemon=True)
                self._thread.start()
            return self._producer

    def _serve(self) -> None:
        producer, stop = self._producer, self._stop  # close() replaces both
        while not stop.is_set():
            producer.poll(0.05)

    async def publish(self, topic: str, items: list[tuple[str, dict]]) -> list[Delivered]:
        """Encodes and produces (key, record) pairs to `topic`; returns where each landed.

        CodecError: a record the schema refuses (a client error). PublishUnavailable: Kafka or the
        registry failed (retry later)."""
        codec = self.codecs.for_topic(topic)
        try:
            values = await asyncio.to_thread(lambda: [codec.encode(record) for _, record in items])
        except ServiceUnavailable as error:  # unreachable, timed out, 5xx
            raise PublishUnavailable(error.detail, error.service) from error
        except RegistryError as error:  # it answers but refuses the subject: not provisioned
            raise PublishUnavailable(str(error), REGISTRY) from error
        producer = await asyncio.to_thread(self._ensure_producer)
        loop = asyncio.get_running_loop()
        target = self.topic_map.get(topic, topic)
        futures = []

        def on_delivery(future: asyncio.Future, error, message) -> None:
            result = error if error is not None else (message.partition(), message.offset())
            loop.call_soon_threadsafe(_settle, future, result)

        for (key, _), value in zip(items, values):
            future = loop.create_future()
            futures.append(future)
            try:
                async for attempt in _QUEUE_FULL_RETRIES.copy():  # local queue full: let deliveries drain
                    with attempt:
                        producer.produce(target, key=key.encode(), value=value,
                                         on_delivery=lambda e, m, f=future: on_delivery(f, e, m))
            except BufferError:
                raise PublishUnavailable("the producer's queue stays full; retry later") from None
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures), self.delivery_timeout_s + 5)
        except asyncio.TimeoutError:
            raise PublishUnavailable(f"Kafka did not acknowledge within {self.delivery_timeout_s + 5:.0f} s") from None
        except _DeliveryFailed as failure:
            raise PublishUnavailable(f"Kafka refused the message: {failure}") from None
        return [Delivered(key, partition, offset) for (key, _), (partition, offset) in zip(items, results)]

    async def close(self) -> None:
        if self._producer is not None:
            await asyncio.to_thread(self._producer.flush, 5)
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2)
        # librdkafka clients live until the last reference goes: a kept one reconnects forever
        self._producer, self._thread = None, None
        self._stop = threading.Event()


class _DeliveryFailed(Exception):
    pass


def _settle(future: asyncio.Future, result) -> None:
    if future.done():
        return
    if isinstance(result, tuple):
        future.set_result(result)
    else:
        future.set_exception(_DeliveryFailed(str(result)))
