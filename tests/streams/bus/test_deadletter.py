"""`algo deadletter`: ids, selectors and ages (unit), and list/show/replay against the real Kafka and
registry: a dead letter goes back, raw, to the partition it came from, with the header naming it."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ops.cli import cli
from streams.bus.codecs import CodecRegistry
from streams.bus.deadletter import (REPLAYED_FROM_HEADER, DeadLetter, DeadLetterError, Selector, dead_letter_record,
                                    parse_id, parse_since)
from streams.errors import CodecError
from tests.kafka_tools import produce

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def letter(**overrides) -> DeadLetter:
    record = dead_letter_record(topic="market.ticks", partition=2, offset=41, key=b"AAPL", value=b"\x00" * 100,
                                agent="bars", error=CodecError("no magic byte"))
    record.update(overrides)
    return DeadLetter(0, 7, record)


def test_ids_are_partition_colon_offset_and_anything_else_is_named():
    assert parse_id("0:42") == (0, 42) and letter().id == "0:7"
    for bad in ("42", "a:1", "0:-1", ""):
        with pytest.raises(DeadLetterError, match="PARTITION:OFFSET"):
            parse_id(bad)


def test_since_takes_ages_and_iso_times():
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("1.5h", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-30T09:30", NOW) == datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)
    assert parse_since("2026-11-30T09:30:00Z", NOW) == datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)
    with pytest.raises(DeadLetterError, match="--since 'yesterday'"):
        parse_since("yesterday", NOW)


def test_a_selector_needs_every_given_field_to_match():
    old = letter(ts=NOW - timedelta(days=2))
    assert Selector().matches(old) and Selector().empty
    assert Selector(topic="market.ticks", agent="bars").matches(old)
    assert not Selector(topic="news.items").matches(old)
    assert not Selector(agent="analyst").matches(old)
    assert not Selector(since=NOW - timedelta(days=1)).matches(old)
    assert Selector(since=NOW - timedelta(days=3)).matches(old)


def test_show_previews_the_value_unless_full():
    preview, full = letter().detail(), letter().detail(full=True)
    assert len(base64.b64decode(preview["value_base64"])) == 64 and preview["value_truncated"]
    assert len(base64.b64decode(full["value_base64"])) == 100 and not full["value_truncated"]
    assert preview["source_topic"] == "market.ticks" and preview["source_partition"] == 2 and preview["key"] == "AAPL"


def test_replay_needs_ids_a_selector_or_all():
    result = CliRunner().invoke(cli, ["deadletter", "replay"])
    assert result.exit_code == 2 and "IDS, --topic/--agent/--since, or --all" in result.output
    result = CliRunner().invoke(cli, ["deadletter", "replay", "0:1", "--agent", "bars"])
    assert result.exit_code == 2 and "not both" in result.output


@pytest.fixture
def source_topic(provisioned):
    name = f"test.deadletter.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(provisioned.kafka_config())
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["deadletter", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_show_and_replay_to_the_partition_it_came_from(provisioned, source_topic):
    agent = f"test-agent-{uuid.uuid4().hex[:6]}"
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("dead-letter")
    poison = [bytes([n]) * (70 + n) for n in range(3)]
    ids = []
    for n, value in enumerate(poison):
        record = dead_letter_record(topic=source_topic, partition=2 - n % 2, offset=100 + n, key=f"K{n}".encode(),
                                    value=value, agent=agent, error=CodecError(f"bad {n}"))
        partition, offset = produce(provisioned, "dead-letter", source_topic.encode(), codec.encode(record))
        ids.append(f"{partition}:{offset}")

    rows = [json.loads(line) for line in run("list", "--agent", agent, "--format", "json").splitlines()]
    assert [row["id"] for row in rows] == ids[::-1]  # newest first
    assert rows[0]["error"] == "bad 2" and rows[0]["source_partition"] == 2 and rows[0]["value_bytes"] == 72
    assert [json.loads(line)["id"] for line in run("list", "--agent", agent, "--limit", "1", "--format",
                                                   "json").splitlines()] == ids[-1:]
    assert "no dead letters match" in run("list", "--agent", agent, "--topic", "news.items")
    table = run("list", "--agent", agent)
    assert all(i in table for i in ids) and "bad 1" in table

    shown = json.loads(run("show", ids[1], "--full"))
    assert base64.b64decode(shown["value_base64"]) == poison[1] and shown["key"] == "K1"

    dry = json.loads(run("replay", "--agent", agent, "--dry-run", "--json"))
    assert dry["dry_run"] and [r["id"] for r in dry["replayed"]] == ids and all(r["offset"] is None
                                                                                 for r in dry["replayed"])
    assert read_topic(provisioned, source_topic, expect=0) == []

    done = json.loads(run("replay", ids[0], ids[2], "--json"))["replayed"]
    assert [(r["id"], r["partition"]) for r in done] == [(ids[0], 2), (ids[2], 2)]
    messages = read_topic(provisioned, source_topic, expect=2)
    assert [(m.partition(), m.key(), m.value(), dict(m.headers())[REPLAYED_FROM_HEADER].decode())
            for m in messages] == [(2, b"K0", poison[0], ids[0]), (2, b"K2", poison[2], ids[2])]


def test_unknown_ids_are_refused_before_anything_is_sent(provisioned):
    result = CliRunner().invoke(cli, ["deadletter", "replay", "0:999999999"])
    assert result.exit_code == 1 and "0:999999999 is not in dead-letter" in result.output
    result = CliRunner().invoke(cli, ["deadletter", "show", "5:0"])
    assert result.exit_code == 1 and "5:0 is not in dead-letter" in result.output


def read_topic(settings, topic: str, expect: int, timeout: float = 10) -> list:
    consumer = Consumer(settings.kafka_config({"group.id": f"test-{uuid.uuid4().hex[:8]}",
                                               "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    messages = []
    try:
        deadline = datetime.now() + timedelta(seconds=timeout if expect else 2)
        while datetime.now() < deadline and (len(messages) < expect or not expect):
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_a_value_too_large_to_keep_is_left_at_its_source_and_the_reason_says_where():
    from streams.bus.deadletter import MAX_KEPT_VALUE_BYTES

    kept = dead_letter_record(topic="market.ticks", partition=1, offset=9, key=b"K", value=b"\x00" * MAX_KEPT_VALUE_BYTES,
                              agent="bars", error=CodecError("unknown writer schema id 0"))
    assert kept["value"] == b"\x00" * MAX_KEPT_VALUE_BYTES
    huge = dead_letter_record(topic="market.ticks", partition=1, offset=9, key=b"K", value=b"\x00" * (5 << 20),
                              agent="bars", error=CodecError("unknown writer schema id 0"))
    assert huge["value"] is None
    assert huge["error"] == ("unknown writer schema id 0 [the value, 5,242,880 bytes, is too large to keep in a "
                             "dead letter: it stays at market.ticks[1]@9]")
