import json
import uuid

import httpx
import pytest
from confluent_kafka.schema_registry import Schema

from streams.bus.codecs import AvroCodec, FaustAvroCodec, registry_client
from streams.errors import CodecError, RegistryError, ServiceUnavailable
from streams.outages import REGISTRY
from streams.bus.schemas import all_schema_names, schema_str, validation_errors
from streams.bus.topics import ALL_TOPICS, topic_spec
from tests import fixtures
from tests.streams.bus.flaky_registry import answered, flaky_codec, refused


@pytest.fixture
def client():
    # confluent-kafka's in-process mock registry: a unit test does not leave the process
    client = registry_client(f"mock://unit-{uuid.uuid4().hex}")
    for spec in ALL_TOPICS:
        client.register_schema(spec.subject, Schema(schema_str(spec.schema), "AVRO"))
    return client


def test_every_topic_has_a_schema_with_docs_everywhere():
    assert {spec.schema for spec in ALL_TOPICS} == set(all_schema_names())
    for name in all_schema_names():
        schema = json.loads(schema_str(name))
        assert schema["namespace"] == "algo.events" and schema["doc"]

        def walk(record):
            for field in record["fields"]:
                assert field.get("doc"), f"{name}.{field['name']} has no doc"
                for candidate in field["type"] if isinstance(field["type"], list) else [field["type"]]:
                    if isinstance(candidate, dict) and candidate.get("type") == "array" and isinstance(candidate["items"], dict) and candidate["items"].get("type") == "record":
                        walk(candidate["items"])
        walk(schema)


@pytest.mark.parametrize("topic,builder", [
    ("market.ticks", fixtures.tick), ("market.bars", fixtures.bar), ("agent.signals", fixtures.signal),
    ("consensus.decisions", fixtures.decision), ("agent.logs", fixtures.agent_log), ("news.items", fixtures.news_item),
])
def test_roundtrip_in_confluent_wire_format(client, topic, builder):
    codec = AvroCodec(topic_spec(topic), client)
    record = builder()
    data = codec.encode(record)
    schema_id = client.get_latest_version(f"{topic}-value").schema_id
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema_id
    assert codec.decode(data) == record


def test_bad_record_is_a_codec_error_naming_the_problem(client):
    codec = AvroCodec(topic_spec("market.ticks"), client)
    with pytest.raises(CodecError, match="MarketTick"):
        codec.encode(fixtures.tick(price="not a number"))
    assert any("price" in e for e in validation_errors("MarketTick", fixtures.tick(price="x")))


@pytest.mark.parametrize("data", [b"", b"\x01garbage", b"\x00\x00\x00\x00", b"\x00\x00\x00\x27\x0fzz"])
def test_undecodable_bytes_are_codec_errors(client, data):
    with pytest.raises(CodecError):
        AvroCodec(topic_spec("market.ticks"), client).decode(data)


def test_truncated_or_overlong_records_are_codec_errors(client):
    codec = AvroCodec(topic_spec("market.ticks"), client)
    data = codec.encode(fixtures.tick())
    with pytest.raises(CodecError, match="cannot decode MarketTick"):
        codec.decode(data[:-3])
    with pytest.raises(CodecError, match="2 bytes left over"):
        codec.decode(data + b"\x00\x00")


def test_unknown_writer_schema_id_is_a_codec_error_naming_it(client):
    with pytest.raises(CodecError, match="unknown writer schema id 9999"):
        AvroCodec(topic_spec("market.ticks"), client).decode(b"\x00" + (9999).to_bytes(4, "big") + b"\x02" * 20)


def test_unregistered_subject_is_refused_without_auto_register():
    client = registry_client(f"mock://empty-{uuid.uuid4().hex}")
    with pytest.raises(RegistryError, match="algo provision"):
        AvroCodec(topic_spec("market.ticks"), client).encode(fixtures.tick())


def test_faust_codec_delegates_and_rejects_non_dicts(client):
    codec = FaustAvroCodec(AvroCodec(topic_spec("market.bars"), client))
    record = fixtures.bar()
    assert codec.loads(codec.dumps(record)) == record
    with pytest.raises(CodecError):
        codec.dumps("not a dict")


# --- a registry outage is not a bad message ---------------------------------------------------------------

def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_registry_is_service_unavailable_at_once_not_a_codec_error():
    import time

    client = registry_client(f"http://127.0.0.1:{_closed_port()}/apis/ccompat/v7")
    codec = AvroCodec(topic_spec("market.ticks"), client)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="schema registry is unavailable: .*refused") as raised:
        codec.encode(fixtures.tick())
    assert raised.value.service == REGISTRY
    with pytest.raises(ServiceUnavailable) as raised:
        codec.decode(b"\x00\x00\x00\x00\x07" + b"\x02" * 20)
    assert not isinstance(raised.value, CodecError)
    assert time.monotonic() - started < 2  # the client does not retry inside: callers own the policy


@pytest.mark.parametrize("failure", [refused(), answered(500), answered(503), answered(429),
                                     httpx.ReadTimeout("timed out")], ids=str)
def test_registry_outage_while_decoding_is_transient_and_the_message_decodes_after(failure):
    codec, registry, data = flaky_codec("market.bars", failure)
    with pytest.raises(ServiceUnavailable):
        codec.decode(data)
    assert codec.decode(data) == fixtures.bar()  # the same bytes, once the registry answers
    assert registry.calls == 2


@pytest.mark.parametrize("failure", [refused(), answered(502), httpx.ConnectTimeout("timed out")], ids=str)
def test_registry_outage_while_encoding_is_transient(failure):
    codec, _, _ = flaky_codec("market.ticks", failure)
    with pytest.raises(ServiceUnavailable):
        codec.encode(fixtures.tick())
    assert codec.decode(codec.encode(fixtures.tick())) == fixtures.tick()


def test_schema_id_the_registry_answers_404_for_is_a_poison_message():
    codec, _, data = flaky_codec("market.bars", answered(404))
    with pytest.raises(CodecError, match="unknown writer schema id"):
        codec.decode(data)


@pytest.mark.parametrize("error,outage", [
    (refused(), True), (httpx.ReadTimeout("timed out"), True), (answered(500), True), (answered(401), True),
    (answered(404), False), (ValueError("bad bytes"), False), (EOFError(), False)], ids=repr)
def test_decoding_outage_tells_the_registry_failing_from_the_message_failing(error, outage):
    """What `algo tail` and AvroCodec.decode use: an outage stops the command, a bad message is shown."""
    from streams.bus.codecs import decoding_outage

    found = decoding_outage(error)
    assert (found is not None) == outage
    assert found is None or found.service == REGISTRY
