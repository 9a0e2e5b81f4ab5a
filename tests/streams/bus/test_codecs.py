import json
import uuid

import pytest
from confluent_kafka.schema_registry import Schema

from streams.bus.codecs import AvroCodec, FaustAvroCodec, registry_client
from streams.errors import CodecError, RegistryError
from streams.bus.schemas import all_schema_names, schema_str, validation_errors
from streams.bus.topics import ALL_TOPICS, topic_spec
from tests import fixtures


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
