"""Avro codecs in the Confluent wire format (magic byte + schema id), through the schema registry.

Built on confluent-kafka's SchemaRegistryClient and Avro serializers; the schema is loaded from
its .avsc file. Records stay plain dicts (timestamps as aware datetimes); conversion to rows or
JSON happens at the edges (streams.vault.rows, `algo tail`).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

from authlib.deprecate import AuthlibDeprecationWarning  # noqa: E402

# authlib forces its deprecation warnings "always" on import.
warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)

import faust  # noqa: E402

import httpx  # noqa: E402

try:  # confluent-kafka's registry client uses httpx2 when it is installed (openai brings it), else httpx
    import httpx2  # noqa: E402

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - no httpx2 in this environment
    TRANSPORT_ERRORS = (httpx.TransportError,)
from confluent_kafka.error import SerializationError  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from streams.errors import CodecError, RegistryError, ServiceUnavailable  # noqa: E402
from streams.outages import REGISTRY, first_line  # noqa: E402
from streams.bus.schemas import schema_str  # noqa: E402
from streams.bus.topics import TopicSpec  # noqa: E402

MAGIC_BYTE = 0
REGISTRY_TIMEOUT_S = 5.0


@lru_cache(maxsize=8)
def registry_client(url: str) -> SchemaRegistryClient:
    """One client per registry URL and process, so schema ids are cached once.

    A request times out after REGISTRY_TIMEOUT_S (httpx waits forever by default) and is not
    retried inside the client, which would block the caller for up to ~7 s: the callers retry
    (streams.outages) or report the outage at once (the bridge's 503, `algo replay`)."""
    return SchemaRegistryClient.new_client(  # mock:// URLs give the in-process mock
        {"url": url, "timeout": REGISTRY_TIMEOUT_S, "max.retries": 0})


def _is_outage(error: SchemaRegistryError) -> bool:
    """The registry answered, but as a service that is down or overloaded, not about our schema."""
    status = error.http_status_code
    return status is None or status >= 500 or status in (408, 429)


def _unavailable(error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(REGISTRY, first_line(error))


def decoding_outage(error: Exception) -> ServiceUnavailable | None:
    """What a deserializer's `error` means when it is the registry's fault, not the message's: it
    was unreachable or timed out, or answered anything but 404 (401/403 too: no message would
    decode, so none is to blame). None when the message itself is bad."""
    if isinstance(error, TRANSPORT_ERRORS):  # refused, reset, timed out
        return _unavailable(error)
    if isinstance(error, SchemaRegistryError) and error.http_status_code != 404:
        return _unavailable(error)
    return None


class AvroCodec:
    """Encodes and decodes one topic's values against its registered schema.

    The producer side never registers schemas (`algo provision` does), so a schema that the
    registry would refuse can not sneak in through a producer.
    """

    def __init__(
        self,
        spec: TopicSpec,
        client: SchemaRegistryClient,
        *,
        auto_register: bool = False,
        reader_schema: str | None = None,
    ) -> None:
        self.spec = spec
        self._context = SerializationContext(spec.name, MessageField.VALUE)
        self._serializer = AvroSerializer(
            client,
            schema_str(spec.schema),
            conf={"auto.register.schemas": auto_register, "use.latest.version": False},
        )
        self._deserializer = AvroDeserializer(client, reader_schema)

    def encode(self, record: dict) -> bytes:
        try:
            return self._serializer(record, self._context)
        except TRANSPORT_ERRORS as error:  # refused, reset, timed out
            raise _unavailable(error) from error
        except SchemaRegistryError as error:
            if _is_outage(error):
                raise _unavailable(error) from error
            raise RegistryError(
                f"{self.spec.subject}: registry refused ({error}); did you run `algo provision`?"
            ) from error
        except (SerializationError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise CodecError(f"cannot encode {self.spec.schema} for {self.spec.name}: {error}") from error

    def decode(self, data: bytes | None) -> dict:
        """The record; CodecError for a message that is malformed (not framed, truncated, an id the
        registry answers 404 for, bytes its schema does not read); ServiceUnavailable when the
        registry can not answer now (the message may be fine: retry it)."""
        if not data:
            raise CodecError(f"empty message on {self.spec.name}")
        if data[0] != MAGIC_BYTE or len(data) < 5:
            raise CodecError(
                f"not Confluent-framed Avro on {self.spec.name} (first byte {data[0]}, expected {MAGIC_BYTE})"
            )
        try:
            record = self._deserializer(data, self._context)
        except Exception as error:  # fastavro raises a variety of plain exceptions on bad bytes
            outage = decoding_outage(error)
            if outage is not None:
                raise outage from error
            if isinstance(error, SchemaRegistryError):  # 404
                raise CodecError(f"unknown writer schema id {int.from_bytes(data[1:5], 'big')}: {error}") from error
            raise CodecError(f"cannot decode {self.spec.schema} on {self.spec.name}: {error}") from error
        if not isinstance(record, dict):
            raise CodecError(f"decoded {self.spec.name} value is not a record")
        return record


class FaustAvroCodec(faust.Codec):
    """Lets Faust topics send plain dicts through an AvroCodec."""

    def __init__(self, avro: AvroCodec, **kwargs) -> None:
        super().__init__(**kwargs)
        self.avro = avro

    def _dumps(self, obj: object) -> bytes:
        if not isinstance(obj, dict):
            raise CodecError(f"{self.avro.spec.name} takes dict records, got {type(obj).__name__}")
        return self.avro.encode(obj)

    def _loads(self, data: bytes) -> dict:
        return self.avro.decode(data)


class CodecRegistry:
    """Codecs for all topics against one registry, created lazily and cached."""

    def __init__(self, registry_url: str) -> None:
        self.registry_url = registry_url
        self._codecs: dict[str, AvroCodec] = {}

    @property
    def client(self) -> SchemaRegistryClient:
        return registry_client(self.registry_url)

    def for_topic(self, name: str) -> AvroCodec:
        from streams.bus.topics import topic_spec

        if name not in self._codecs:
            self._codecs[name] = AvroCodec(topic_spec(name), self.client)
        return self._codecs[name]
