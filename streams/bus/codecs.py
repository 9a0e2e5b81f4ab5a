"""Avro codecs in the Confluent wire format (magic byte + schema id), through the schema registry.

Built on confluent-kafka's SchemaRegistryClient and fastavro's schemaless reader and writer; the
schema is loaded from its .avsc file. Records stay plain dicts (timestamps as aware datetimes); conversion to rows or
JSON happens at the edges (streams.vault.rows, `algo tail`).
"""
from __future__ import annotations

import json
import warnings
from functools import lru_cache
from io import BytesIO

from authlib.deprecate import AuthlibDeprecationWarning  # noqa: E402

# authlib forces its deprecation warnings "always" on import.
warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)

import fastavro  # noqa: E402
import faust  # noqa: E402

import httpx  # noqa: E402

try:  # confluent-kafka's registry client uses httpx2 when it is installed (openai brings it), else httpx
    import httpx2  # noqa: E402

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:  # pragma: no cover - no httpx2 in this environment
    TRANSPORT_ERRORS = (httpx.TransportError,)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.error import SchemaRegistryError  # noqa: E402

from streams.errors import CodecError, RegistryError, ServiceUnavailable  # noqa: E402
from streams.outages import REGISTRY, first_line  # noqa: E402
from streams.bus.schemas import parsed_schema, schema_str  # noqa: E402
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

    fastavro's schemaless reader and writer do the Avro; the registry is asked once per process for
    this schema's id (encoding) and once per writer schema id seen (decoding), then both are cached.
    The producer side never registers schemas (`algo provision` does), so a schema that the registry
    would refuse can not sneak in through a producer.
    """

    def __init__(self, spec: TopicSpec, client: SchemaRegistryClient) -> None:
        self.spec = spec
        self._client = client
        self._schema = parsed_schema(spec.schema)
        self._header: bytes | None = None
        self._writers: dict[int, dict] = {}

    def _registered_header(self) -> bytes:
        """The magic byte and this schema's registry id, looked up once."""
        if self._header is None:
            try:
                registered = self._client.lookup_schema(self.spec.subject, Schema(schema_str(self.spec.schema), "AVRO"))
            except TRANSPORT_ERRORS as error:  # refused, reset, timed out
                raise _unavailable(error) from error
            except SchemaRegistryError as error:
                if _is_outage(error):
                    raise _unavailable(error) from error
                raise RegistryError(
                    f"{self.spec.subject}: registry refused ({error}); did you run `algo provision`?"
                ) from error
            self._header = bytes([MAGIC_BYTE]) + registered.schema_id.to_bytes(4, "big")
        return self._header

    def encode(self, record: dict) -> bytes:
        header = self._registered_header()
        out = BytesIO()
        out.write(header)
        try:
            fastavro.schemaless_writer(out, self._schema, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise CodecError(f"cannot encode {self.spec.schema} for {self.spec.name}: {error}") from error
        return out.getvalue()

    def _writer_schema(self, schema_id: int) -> dict:
        writer = self._writers.get(schema_id)
        if writer is None:
            try:
                registered = self._client.get_schema(schema_id)
            except Exception as error:
                outage = decoding_outage(error)
                if outage is not None:
                    raise outage from error
                raise CodecError(f"unknown writer schema id {schema_id} on {self.spec.name}: {error}") from error
            try:
                writer = fastavro.parse_schema(json.loads(registered.schema_str))
            except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as error:
                raise CodecError(f"writer schema id {schema_id} is not Avro this codec reads: {error}") from error
            self._writers[schema_id] = writer
        return writer

    def decode(self, data: bytes | None) -> dict:
        """The record; CodecError for a message that is malformed (not framed, truncated, an id the
        registry answers 404 for, bytes its schema does not read); ServiceUnavailable when the
        registry can not answer now (the message may be fine: retry it)."""
        if not data:
            raise CodecError(f"empty message on {self.spec.name}")
        if data[0] != MAGIC_BYTE or len(data) <= 5:
            raise CodecError(
                f"not Confluent-framed Avro on {self.spec.name} (first byte {data[0]}, expected {MAGIC_BYTE}, "
                f"{len(data)} bytes)"
            )
        writer = self._writer_schema(int.from_bytes(data[1:5], "big"))
        payload = BytesIO(data[5:])
        try:
            record = fastavro.schemaless_reader(payload, writer, None)
        except Exception as error:  # fastavro raises a variety of plain exceptions on bad bytes
            raise CodecError(f"cannot decode {self.spec.schema} on {self.spec.name}: {error}") from error
        if not isinstance(record, dict):
            raise CodecError(f"decoded {self.spec.name} value is not a record")
        if payload.tell() != len(data) - 5:
            raise CodecError(f"{len(data) - 5 - payload.tell()} bytes left over after the {self.spec.schema} record "
                             f"on {self.spec.name}")
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
