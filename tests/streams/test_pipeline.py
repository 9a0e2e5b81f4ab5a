"""Integration: the real stack (Kafka, Apicurio, Postgres, Redis) started by the `local_stack` fixture."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from ops.provision import provision
from streams.bus.codecs import CodecRegistry, registry_client
from streams.vault.migrations import migrate
from streams.bus.schemas import schema_str
from tests import fixtures
from tests.kafka_tools import ROOT, Worker, all_matching, first_matching, produce, produce_many, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workers(provisioned, tmp_path_factory):
    worker = Worker("all", tmp_path_factory.mktemp("workers") / "worker.log")
    yield worker
    worker.stop()


def dead_letters(settings, predicate, timeout: float = 60) -> dict:
    return first_matching(settings, "dead-letter", predicate, timeout)


def bars_in_db(settings, symbol: str) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT ts, open, high, low, close, volume, tick_count FROM market_data "
                            "WHERE symbol = %s ORDER BY ts", (symbol,)).fetchall()


def write_csv(path: Path, rows: int) -> None:
    from streams.market.datasets import load_dataset

    aapl = load_dataset("stocks", ["AAPL"])[0]
    lines = ["date,open,high,low,close,volume"]
    for i in range(rows):
        lines.append(f"{str(aapl.dates[i])[:10]},{aapl.open[i]},{aapl.high[i]},{aapl.low[i]},{aapl.close[i]},{aapl.volume[i]:.0f}")
    path.write_text("\n".join(lines) + "\n")


def test_provision_is_idempotent(provisioned):
    again = provision(provisioned, progress=lambda _: None)
    assert again.topics_created == [] and again.migrations_applied == []
    assert len(again.topics_existing) == 13 and set(again.schemas) >= {"market.ticks-value", "dead-letter-value"}
    assert migrate(provisioned.database_url) == []
    with psycopg.connect(provisioned.database_url) as conn:
        on_disk = [(int(path.name[:3]),) for path in sorted((ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql"))]
        assert conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall() == on_disk
        assert on_disk[:3] == [(1,), (2,), (3,)]
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    client = registry_client(provisioned.schema_registry_url)
    assert client.get_compatibility("market.ticks-value") == "BACKWARD"


def test_replay_ticks_become_bars_in_postgres_once(workers, provisioned, tmp_path):
    symbol = f"T{uuid.uuid4().hex[:6].upper()}"
    csv = tmp_path / f"{symbol.lower()}.csv"
    write_csv(csv, 30)
    for _ in range(2):  # the second replay must not add rows
        out = subprocess.run([sys.executable, "-m", "ops.cli", "replay", "--csv", str(csv), "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["ticks"] == 120
        rows = wait_for(lambda: (r := bars_in_db(provisioned, symbol)) and len(r) == 30 and r, what="30 bars")
    time.sleep(2)
    rows = bars_in_db(provisioned, symbol)
    assert len(rows) == 30
    from streams.market.datasets import load_csv

    [series] = load_csv(csv)
    assert [float(r[4]) for r in rows] == pytest.approx(list(series.close), abs=1e-6)
    assert [float(r[2]) for r in rows] == pytest.approx(list(series.high), abs=1e-6)
    assert [float(r[5]) for r in rows] == pytest.approx(list(series.volume), abs=1e-6)
    assert all(r[6] == 4 for r in rows)


def test_undecodable_tick_goes_to_dead_letter_and_pipeline_keeps_running(workers, provisioned, tmp_path):
    garbage = b"\x00\x00\x00\x00\x01not avro at all"
    partition, offset = produce(provisioned, "market.ticks", b"GARBAGE", garbage)
    letter = dead_letters(provisioned, lambda r: r["source_topic"] == "market.ticks" and r["offset"] == offset
                          and r["partition"] == partition)
    assert letter["value"] == garbage and letter["key"] == b"GARBAGE" and letter["agent"] == "bars"
    assert letter["error_type"] == "CodecError" and letter["error"]
    # `algo deadletter` finds it and re-drives it to its partition; still bad, it is dead-lettered again
    listed = subprocess.run([sys.executable, "-m", "ops.cli", "deadletter", "list", "--topic", "market.ticks",
                             "--agent", "bars", "--limit", "1000", "--format", "json"], cwd=ROOT, check=True,
                            capture_output=True, text=True, timeout=60).stdout
    [letter_id] = [row["id"] for row in map(json.loads, listed.splitlines())
                   if (row["source_partition"], row["source_offset"]) == (partition, offset)]
    replayed = json.loads(subprocess.run([sys.executable, "-m", "ops.cli", "deadletter", "replay", letter_id, "--json"],
                                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout)
    [landed] = replayed["replayed"]
    assert landed["topic"] == "market.ticks" and landed["partition"] == partition and landed["offset"] > offset
    again = dead_letters(provisioned, lambda r: r["source_topic"] == "market.ticks" and r["offset"] == landed["offset"]
                         and r["partition"] == partition)
    assert again["value"] == garbage and again["agent"] == "bars"
    # still running: new ticks still become bars
    symbol = f"K{uuid.uuid4().hex[:6].upper()}"
    csv = tmp_path / f"{symbol.lower()}.csv"
    write_csv(csv, 5)
    subprocess.run([sys.executable, "-m", "ops.cli", "replay", "--csv", str(csv)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wait_for(lambda: len(bars_in_db(provisioned, symbol)) == 5, what="bars after a dead letter")


def test_constraint_violation_is_dead_lettered_alone(workers, provisioned):
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.bars")
    symbol = f"C{uuid.uuid4().hex[:6].upper()}"
    bad = fixtures.bar(symbol=symbol, high=90.0, low=99.0)  # valid Avro, refused by a CHECK
    good = fixtures.bar(symbol=symbol, ts=fixtures.T0.replace(day=6, hour=0, minute=0))
    partition, offset = produce(provisioned, "market.bars", symbol.encode(), codec.encode(bad))
    produce(provisioned, "market.bars", symbol.encode(), codec.encode(good))
    letter = dead_letters(provisioned, lambda r: r["source_topic"] == "market.bars" and r["offset"] == offset
                          and r["partition"] == partition)
    assert letter["error_type"] == "PersistenceError" and "market_data" in letter["error"]
    assert codec.decode(letter["value"]) == bad
    rows = wait_for(lambda: bars_in_db(provisioned, symbol), what="the good bar")
    assert len(rows) == 1 and float(rows[0][2]) == good["high"]


def test_signals_and_logs_persist_idempotently(workers, provisioned):
    codecs = CodecRegistry(provisioned.schema_registry_url)
    signal, log = fixtures.signal(), fixtures.agent_log()
    for _ in range(3):
        produce(provisioned, "agent.signals", b"AAPL", codecs.for_topic("agent.signals").encode(signal))
        produce(provisioned, "agent.logs", b"bars", codecs.for_topic("agent.logs").encode(log))

    def rows():
        with psycopg.connect(provisioned.database_url) as conn:
            return (conn.execute("SELECT count(*) FROM signals WHERE signal_id = %s", (signal["signal_id"],)).fetchone()[0],
                    conn.execute("SELECT count(*) FROM agent_logs WHERE log_id = %s", (log["log_id"],)).fetchone()[0])

    wait_for(lambda: rows() == (1, 1), what="one signal row and one log row")
    time.sleep(2)
    assert rows() == (1, 1)


def test_plain_confluent_consumer_in_another_process_decodes_our_messages(provisioned):
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    tick = fixtures.tick(symbol=f"X{uuid.uuid4().hex[:6]}", price=123.25)
    partition, offset = produce(provisioned, "market.ticks", tick["symbol"].encode(), codec.encode(tick))
    script = f"""
import json, sys
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import SerializationContext, MessageField
consumer = Consumer({{"bootstrap.servers": "{provisioned.kafka_bootstrap}", "group.id": "interop"}})
consumer.assign([TopicPartition("market.ticks", {partition}, {offset})])
message = consumer.poll(20)
value = AvroDeserializer(SchemaRegistryClient({{"url": "{provisioned.schema_registry_url}"}}))(
    message.value(), SerializationContext("market.ticks", MessageField.VALUE))
print(json.dumps({{"key": message.key().decode(), "price": value["price"], "ts": value["ts"].isoformat()}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd="/", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "key": tick["symbol"], "price": 123.25, "ts": tick["ts"].isoformat()}


def test_kcat_reads_confluent_framed_avro_that_the_registry_resolves(provisioned):
    """Debian's kcat is built without libserdes (no `-s avro`), so kcat fetches the raw bytes and
    the writer schema comes from the registry's Confluent API by the id in the frame."""
    import fastavro

    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.bars")
    bar = fixtures.bar(symbol=f"Y{uuid.uuid4().hex[:6]}")
    partition, offset = produce(provisioned, "market.bars", bar["symbol"].encode(), codec.encode(bar))
    out = subprocess.run(["kcat", "-C", "-b", provisioned.kafka_bootstrap, "-t", "market.bars", "-p", str(partition),
                          "-o", str(offset), "-c", "1", "-e", "-q", "-f", "%k\t%S\t%s"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key, size, raw = out.stdout.split(b"\t", 2)
    assert key == bar["symbol"].encode() and int(size) == len(raw)
    assert raw[0] == 0
    schema_id = int.from_bytes(raw[1:5], "big")
    response = httpx.get(f"{provisioned.schema_registry_url}/schemas/ids/{schema_id}")
    schema = fastavro.parse_schema(json.loads(response.json()["schema"]))
    decoded = fastavro.schemaless_reader(io.BytesIO(raw[5:]), schema)
    assert decoded == bar


def test_registry_enforces_backward_compatibility(provisioned):
    client = registry_client(provisioned.schema_registry_url)
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    subject = f"{topic}-value"
    v1 = json.loads(schema_str("MarketTick"))
    client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
    client.set_compatibility(subject_name=subject, level="BACKWARD")

    incompatible = json.loads(json.dumps(v1))
    incompatible["fields"].append({"name": "venue", "type": "string", "doc": "required, no default"})
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(incompatible), "AVRO"))
    assert refused.value.http_status_code == 409
    assert not client.test_compatibility("market.ticks-value", Schema(json.dumps(incompatible), "AVRO"))

    compatible = json.loads(json.dumps(v1))
    compatible["fields"].append({"name": "venue", "type": ["null", "string"], "default": None, "doc": "optional"})
    new_id = client.register_schema(subject, Schema(json.dumps(compatible), "AVRO"))
    assert client.get_latest_version(subject).schema_id == new_id

    # a new-schema message is read by an old consumer (reader schema v1)
    serializer = AvroSerializer(client, json.dumps(compatible), conf={"auto.register.schemas": False})
    context = SerializationContext(topic, MessageField.VALUE)
    record = {**fixtures.tick(), "venue": "XNAS"}
    data = serializer(record, context)
    assert int.from_bytes(data[1:5], "big") == new_id
    produce(provisioned, topic, b"AAPL", data)
    consumer = Consumer(provisioned.kafka_config({"group.id": f"old-{topic}", "auto.offset.reset": "earliest"}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    message = wait_for(lambda: (m := consumer.poll(1)) is not None and not m.error() and m, what="message")
    consumer.close()
    old_reader = AvroDeserializer(client, json.dumps(v1))
    assert old_reader(message.value(), context) == fixtures.tick()


def test_open_bar_survives_a_worker_restart(provisioned, tmp_path):
    """The open bar lives in a changelogged table: a restarted worker recovers it."""
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    symbol = f"W{uuid.uuid4().hex[:6].upper()}"
    day = fixtures.T0.replace(hour=0, minute=0)
    prices = [10.0, 8.0, 13.0, 12.0]
    ticks = [fixtures.tick(symbol=symbol, ts=fixtures.T0.replace(hour=14 + i), price=p, size=1.0, seq=i)
             for i, p in enumerate(prices)]
    ticks.append(fixtures.tick(symbol=symbol, ts=fixtures.T0.replace(day=6), price=20.0, size=1.0, seq=4))
    app_id = f"test-{uuid.uuid4().hex[:8]}"

    def send(batch):
        for tick in batch:
            produce(provisioned, "market.ticks", symbol.encode(), codec.encode(tick))

    first = Worker("bars", tmp_path / "first.log", ALGO_APP_ID=app_id)
    send(ticks[:2])
    first_matching(provisioned, "market.bars", lambda r: r["symbol"] == symbol and r["tick_count"] == 2)  # idle flush
    first.stop()
    second = Worker("bars", tmp_path / "second.log", ALGO_APP_ID=app_id)
    try:
        send(ticks[2:])
        bar = first_matching(provisioned, "market.bars", lambda r: r["symbol"] == symbol and r["ts"] == day
                             and r["tick_count"] == 4, timeout=45)
        assert (bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]) == (10.0, 13.0, 8.0, 12.0, 4.0)
    finally:
        second.stop()


def test_changelog_topics_are_compacted_with_short_segments_even_when_they_already_exist(provisioned):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    from ops.provision import CHANGELOG_CONFIG, ensure_changelog_topics

    name = f"test-{uuid.uuid4().hex[:8]}-changelog"
    admin = AdminClient(provisioned.kafka_config())
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result()

    def config() -> dict:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        entries = admin.describe_configs([resource])[resource].result()
        return {key: entries[key].value for key in CHANGELOG_CONFIG}

    assert config()["cleanup.policy"] == "delete"
    assert ensure_changelog_topics(provisioned, [(name, 2)]) == []  # it exists: aligned, not created
    assert config() == CHANGELOG_CONFIG
    admin.delete_topics([name])


def test_poison_ticks_between_valid_ones_are_dead_lettered_with_their_reasons(workers, provisioned, tmp_path):
    from streams.market.datasets import load_csv
    from streams.market.ticks import series_ticks

    symbol = f"P{uuid.uuid4().hex[:6].upper()}"
    csv = tmp_path / f"{symbol.lower()}.csv"
    write_csv(csv, 6)
    [series] = load_csv(csv)
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    assert series.symbol == symbol
    valid = [codec.encode(t) for t in series_ticks(series, "test:poison")]
    some_tick = fixtures.tick(symbol=symbol)
    poisons = [  # (value, what the dead letter's error says)
        (b"not avro at all", "not Confluent-framed Avro"),
        (b"\x00\x00\x0f\x42\x3f" + valid[0][5:], "unknown writer schema id 999999"),
        (valid[0][:-3], "cannot decode MarketTick"),
        (codec.encode({**some_tick, "price": float("nan")}), "price nan is not a positive number"),
        (codec.encode({**some_tick, "price": -12.5}), "price -12.5 is not a positive number"),
        (valid[0] + b"\x01\x02", "2 bytes left over"),
    ]
    messages = []
    for n, value in enumerate(valid):  # a poison after each valid tick, all on the symbol's partition
        messages += [(symbol.encode(), value), (symbol.encode(), poisons[n % len(poisons)][0])]
    produce_many(provisioned, "market.ticks", messages)

    rows = wait_for(lambda: (r := bars_in_db(provisioned, symbol)) and len(r) == 6 and r, what="6 bars")
    assert [float(r[4]) for r in rows] == pytest.approx(list(series.close), abs=1e-6)
    assert all(r[6] == 4 for r in rows)
    letters = all_matching(provisioned, "dead-letter", lambda r: r["source_topic"] == "market.ticks"
                           and r["key"] == symbol.encode(), count=len(valid), timeout=60)
    assert all(letter["agent"] == "bars" for letter in letters)
    reasons = [next(why for value, why in poisons if value == letter["value"]) for letter in letters]
    assert all(why in letter["error"] for why, letter in zip(reasons, letters)), [l["error"] for l in letters]
    assert sorted(set(reasons)) == sorted(why for _, why in poisons)
