"""A schema registry client stub that fails the next requests the way a registry outage does, then
answers from confluent-kafka's in-process mock registry (unit tests only)."""
from __future__ import annotations

import uuid

import httpx
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.bus.codecs import AvroCodec, registry_client
from streams.bus.schemas import schema_str
from streams.bus.topics import ALL_TOPICS, topic_spec


def refused() -> Exception:
    return httpx.ConnectError("[Errno 111] Connection refused")


def answered(status: int) -> Exception:
    return SchemaRegistryError(status, status * 100 + 1, f"HTTP {status} from the stub")


class FlakyRegistry:
    """Delegates to a mock registry holding every topic's schema; `get_schema` and `lookup_schema`
    (what decoding and encoding ask the registry) raise the queued `failures` first, one per call."""

    def __init__(self, *failures: Exception) -> None:
        self.real = registry_client(f"mock://flaky-{uuid.uuid4().hex}")
        for spec in ALL_TOPICS:
            self.real.register_schema(spec.subject, Schema(schema_str(spec.schema), "AVRO"))
        self.failures = list(failures)
        self.calls = 0

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def get_schema(self, *args, **kwargs):
        self._maybe_fail()
        return self.real.get_schema(*args, **kwargs)

    def lookup_schema(self, *args, **kwargs):
        self._maybe_fail()
        return self.real.lookup_schema(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def flaky_codec(topic: str, *failures: Exception) -> tuple[AvroCodec, FlakyRegistry, bytes]:
    """A codec on a flaky registry, the registry, and a valid encoded message of `topic` whose
    schema the codec has not seen yet (so decoding it has to ask the registry)."""
    from tests import fixtures

    registry = FlakyRegistry()
    builders = {"market.ticks": fixtures.tick, "market.bars": fixtures.bar, "agent.signals": fixtures.signal}
    data = AvroCodec(topic_spec(topic), registry.real).encode(builders[topic]())
    registry.failures = list(failures)
    return AvroCodec(topic_spec(topic), registry), registry, data
