"""A transient outage is not a poison message (issue 9, point 5).

Unit tests with stubs: how failures are classified and that the agents' helpers wait out an outage
instead of dead-lettering. Integration tests (marked) stop the real registry and the real Postgres of
the stack mid-stream, keep publishing valid messages, start the service again and check that every
message reached its sink and none was dead-lettered.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
import tenacity

from streams import outages
from streams.errors import CodecError, PersistenceError, ServiceUnavailable
from streams.outages import KAFKA, POSTGRES, REGISTRY
from streams.settings import Settings
from tests import fixtures
from tests.streams.bus.flaky_registry import answered, flaky_codec, refused

API_TOKEN = "outage-test-token-0123456789"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(outages, "wait_while_down", tenacity.wait_none())


@pytest.fixture
def app_module(monkeypatch, no_backoff):
    """streams.app with its dead-letter topic recorded instead of sent."""
    import streams.app as app_module

    letters: list[tuple[str, Exception]] = []

    async def send_dead_letter(event, agent, error):
        letters.append((agent, error))

    monkeypatch.setattr(app_module, "send_dead_letter", send_dead_letter)
    app_module.letters = letters
    return app_module


def event_of(topic: str, value: bytes):
    message = SimpleNamespace(topic=topic, partition=0, offset=7, key=b"AAPL", value=value)
    return SimpleNamespace(message=message)


def use_codec(monkeypatch, app_module, codec) -> None:
    monkeypatch.setattr(app_module, "codecs", SimpleNamespace(for_topic=lambda name: codec))


# --- the agents' helpers ------------------------------------------------------------------------------------

async def test_decode_waits_for_the_registry_instead_of_dead_lettering(monkeypatch, app_module):
    codec, registry, data = flaky_codec("market.bars", refused(), answered(503), refused())
    use_codec(monkeypatch, app_module, codec)
    record = await app_module.decode_or_dead_letter(event_of("market.bars", data), "test")
    assert record == fixtures.bar()
    assert app_module.letters == [] and registry.calls == 4  # three failures, then the answer


async def test_malformed_messages_are_still_dead_lettered_with_the_reason(monkeypatch, app_module):
    codec, _, data = flaky_codec("market.bars", answered(404))
    use_codec(monkeypatch, app_module, codec)
    for value in (data, b"\x01not framed", data[:7]):  # an id the registry answers 404 for, no magic byte, truncated
        assert await app_module.decode_or_dead_letter(event_of("market.bars", value), "test") is None
    assert [type(error) for _, error in app_module.letters] == [CodecError] * 3
    assert "unknown writer schema id" in str(app_module.letters[0][1])


async def test_avro_topic_send_waits_for_the_registry_then_sends_the_encoded_bytes(monkeypatch, app_module):
    import faust

    codec, registry, _ = flaky_codec("market.ticks", refused(), answered(500))
    use_codec(monkeypatch, app_module, codec)
    sent = []

    async def fake_send(self, **kwargs):
        sent.append(kwargs)

    monkeypatch.setattr(faust.Topic, "send", fake_send)
    await app_module.avro_topic("market.ticks").send(key=b"AAPL", value=fixtures.tick())
    [kwargs] = sent
    assert kwargs["value_serializer"] == "raw" and codec.decode(kwargs["value"]) == fixtures.tick()
    assert registry.failures == []


async def test_a_send_after_the_producer_stopped_ends_the_timer_quietly_only_while_the_worker_stops(
        monkeypatch, app_module):
    import faust
    from faust.exceptions import NotReady

    async def stopped_producer(self, **kwargs):
        raise NotReady("Producer service not yet started")

    monkeypatch.setattr(faust.Topic, "send", stopped_producer)
    topic = app_module.avro_topic("market.ticks")
    with pytest.raises(NotReady):  # not stopping: a real fault, left to Faust
        await topic.send(key=b"AAPL", value=b"raw bytes")
    monkeypatch.setattr(type(app_module.app), "should_stop", property(lambda self: True))
    with pytest.raises(asyncio.CancelledError, match="the worker is stopping"):
        await topic.send(key=b"AAPL", value=b"raw bytes")


async def test_an_error_of_the_message_is_dead_lettered_and_the_agent_goes_on(app_module):
    event = event_of("consensus.decisions", b"")
    for error in (PersistenceError("market_data lookup: permission denied"), KeyError("symbol")):
        async with app_module.dead_letter_on_failure(event, "risk"):
            raise error
    assert [(agent, type(error)) for agent, error in app_module.letters] == [("risk", PersistenceError),
                                                                             ("risk", KeyError)]
    assert "permission denied" in str(app_module.letters[0][1])


async def test_an_outage_is_never_dead_lettered_by_the_guard(app_module):
    with pytest.raises(ServiceUnavailable):
        async with app_module.dead_letter_on_failure(event_of("fills", b""), "risk"):
            raise ServiceUnavailable(POSTGRES, "connection refused")
    assert app_module.letters == []


async def test_until_available_retries_only_outages(no_backoff):
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ServiceUnavailable(POSTGRES, "connection refused")
        return "row"

    assert await outages.until_available(flaky, what="test") == "row" and len(calls) == 3

    async def broken():
        calls.append(1)
        raise PersistenceError("a constraint")

    calls.clear()
    with pytest.raises(PersistenceError):
        await outages.until_available(broken, what="test")
    assert len(calls) == 1


def test_postgres_down_is_service_unavailable_and_a_refused_row_is_not():
    with pytest.raises(ServiceUnavailable, match="Postgres is unavailable") as raised:
        with outages.postgres_errors():
            psycopg.connect(f"postgresql://algo:algo@127.0.0.1:{closed_port()}/algo", connect_timeout=2)
    assert raised.value.service == POSTGRES
    with pytest.raises(ServiceUnavailable, match="algo provision"):
        with outages.postgres_errors():
            raise psycopg.errors.UndefinedTable("relation \"market_data\" does not exist")
    with pytest.raises(psycopg.errors.CheckViolation):
        with outages.postgres_errors():
            raise psycopg.errors.CheckViolation("violates check constraint")


async def test_vault_write_with_postgres_down_is_an_outage_not_a_refused_row(monkeypatch):
    """The persistence agent's batch write raises ServiceUnavailable (its loop waits it out) rather
    than returning the rows as refused (they would be dead-lettered)."""
    import streams.vault.agents as vault

    sink = vault.SINKS[0]

    class Pool:
        def connection(self):
            from psycopg_pool import PoolTimeout

            raise PoolTimeout("couldn't get a connection after 10.00 sec")

    async def pool():
        return Pool()

    monkeypatch.setattr(vault, "pool", pool)
    with pytest.raises(ServiceUnavailable):
        await vault.write_batch(sink, [("row",)])


# --- the bridge and `algo replay` ---------------------------------------------------------------------------

async def test_bridge_answers_503_naming_the_registry_while_it_is_down():
    from aiohttp.test_utils import TestClient, TestServer

    from streams.bridge.publish import Publisher
    from streams.bridge.server import create_app
    from tests.streams.bridge.fakes import FakeStore

    settings = dataclasses.replace(Settings(), api_token=API_TOKEN,
                                   schema_registry_url=f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7")
    app = create_app(settings, kafka=False, publisher=Publisher(settings), store=FakeStore(), heartbeat_s=0)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/v1/ticks", headers={"Authorization": f"Bearer {API_TOKEN}"},
                                     json={"symbol": "AAPL", "ts": "2013-03-01T14:30:00Z", "price": 438.0, "size": 1})
        body = await response.json()
    assert response.status == 503 and response.headers["Retry-After"]
    assert body["error"] == f"{REGISTRY} unavailable" and "refused" in body["problem"]


@pytest.mark.integration
def test_replay_names_the_registry_when_it_is_down(local_stack):
    """Kafka up (replay checks it first), the registry's port closed."""
    from streams.market.datasets import load_dataset
    from streams.market.replay import replay

    settings = dataclasses.replace(local_stack, schema_registry_url=f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7")
    with pytest.raises(ServiceUnavailable, match=f"^{REGISTRY} is unavailable: http://127.0.0.1") as raised:
        replay(settings, load_dataset("stocks", ["AAPL"]), "test", limit=5, show_progress=False)
    assert raised.value.service == REGISTRY and "\n" not in str(raised.value)


def test_replay_names_kafka_when_it_is_down():
    from streams.market.datasets import load_dataset
    from streams.market.replay import replay

    settings = dataclasses.replace(Settings(), kafka_bootstrap=f"127.0.0.1:{closed_port()}")
    with pytest.raises(ServiceUnavailable, match=f"^{KAFKA} is unavailable: 127.0.0.1") as raised:
        replay(settings, load_dataset("stocks", ["AAPL"]), "test", limit=5, show_progress=False)
    assert "\n" not in str(raised.value)


# --- integration: the real registry and the real Postgres go down mid-stream ---------------------------------

@pytest.fixture(scope="module")
def outage_workers(provisioned, tmp_path_factory):
    """Fresh workers (their own consumer groups, from the topic ends) for ticks -> bars -> Postgres and
    backtests; each is seen consuming before a test stops anything."""
    from tests.kafka_tools import Worker

    logs = tmp_path_factory.mktemp("outage-workers")
    workers = {}
    try:
        for name in ("bars", "persistence", "risk"):
            workers[name] = Worker(name, logs / f"{name}.log")
        for topic in ("market.ticks", "agent.signals", "backtest.requests"):
            warm_up(provisioned, topic)
        yield workers
    finally:
        for worker in workers.values():
            worker.stop()  # fails on "Crashed" in a worker's log: no agent may die of an outage


def warm_up(settings, topic: str) -> None:
    """A message that decodes without the registry (not framed): once it is dead-lettered, the topic's
    consumer is assigned and consuming."""
    from tests.kafka_tools import first_matching, produce

    key = f"WARMUP-{uuid.uuid4().hex[:8]}".encode()
    produce(settings, topic, key, b"\x01warm-up, not Avro")
    first_matching(settings, "dead-letter", lambda r: r["source_topic"] == topic and r["key"] == key, timeout=90)


def dead_letters_with_keys(settings, keys: set[bytes]) -> list[dict]:
    """Every dead letter so far (the whole topic, to its end) whose original key is one of `keys`."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from streams.bus.codecs import registry_client

    deserializer = AvroDeserializer(registry_client(settings.schema_registry_url))
    context = SerializationContext("dead-letter", MessageField.VALUE)
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics("dead-letter", timeout=10).topics["dead-letter"].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition("dead-letter", p), timeout=10)[1] for p in partitions}
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition("dead-letter", p, OFFSET_BEGINNING) for p in todo])
        found, deadline = [], time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.offset() >= ends[message.partition()] - 1:
                todo.discard(message.partition())
            record = deserializer(message.value(), context)
            if record["key"] in keys:
                found.append(record)
        assert not todo, f"dead-letter partitions {todo} not read to their end"
        return found
    finally:
        consumer.close()


def bar_closes(settings, symbol: str) -> list[float]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT close FROM market_data WHERE symbol = %s AND interval = '1d' ORDER BY ts",
                            (symbol,)).fetchall()
    return [float(close) for (close,) in rows]


def day(n: int):
    return fixtures.T0 + timedelta(days=n)


def stopped(settings, name: str) -> None:
    from ops.stack.services import stop_service

    part = stop_service(settings, name)
    assert not part.healthy, (f"{name} still answers after stop_service: this stack's run dir "
                              f"({settings.run_dir}) did not start it ({part.detail})")


def started(settings, name: str) -> None:
    from ops.stack.services import start_service

    part = start_service(settings, name, progress=lambda message: print(f"[stack] {message}", flush=True))
    assert part.healthy, part.detail


@pytest.mark.integration
def test_registry_down_mid_stream_loses_nothing_and_dead_letters_nothing(provisioned, outage_workers):
    from streams.bridge.publish import Publisher, PublishUnavailable
    from streams.bus.codecs import CodecRegistry, registry_client
    from tests.kafka_tools import ROOT, produce, wait_for

    settings = provisioned
    codecs = CodecRegistry(settings.schema_registry_url)
    symbol = f"RG{uuid.uuid4().hex[:6].upper()}"
    prices = [100.0 + n for n in range(8)]
    # encoded while the registry is up: a producer that has the schema keeps producing through the outage
    ticks = [codecs.for_topic("market.ticks").encode(fixtures.tick(symbol=symbol, ts=day(n), price=p, seq=n))
             for n, p in enumerate(prices)]
    signal = fixtures.signal(symbol=symbol)
    produce(settings, "agent.signals", symbol.encode(), codecs.for_topic("agent.signals").encode(signal))
    with psycopg.connect(settings.database_url) as conn:  # mid-stream: the pipeline is moving
        wait_for(lambda: conn.execute("SELECT 1 FROM signals WHERE signal_id = %s", (signal["signal_id"],)).fetchone(),
                 what="the signal before the outage")
    try:
        stopped(settings, "registry")
        for value in ticks[:5]:  # valid ticks whose schema the bars worker has never fetched
            produce(settings, "market.ticks", symbol.encode(), value)

        # meanwhile, new clients are told which service is down, in one line
        registry_client.cache_clear()  # a process that has not fetched the schema yet, like a fresh bridge
        with pytest.raises(PublishUnavailable) as raised:
            asyncio.run(Publisher(settings).publish("news.items", [("n1", fixtures.news_item())]))
        assert raised.value.service == REGISTRY
        out = subprocess.run([sys.executable, "-m", "ops.cli", "replay", "--dataset", "stocks", "--symbols", "AAPL",
                              "--limit", "5"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert out.returncode == 1 and errors == [errors[0]] and f"{REGISTRY} is unavailable" in errors[0], out.stderr
        wait_for(lambda: "waits: schema registry is unavailable" in outage_workers["bars"].log(), timeout=60,
                 what="the bars worker to wait for the registry")
        assert bar_closes(settings, symbol) == []  # paused, not skipped
    finally:
        started(settings, "registry")
    for value in ticks[5:]:
        produce(settings, "market.ticks", symbol.encode(), value)
    wait_for(lambda: bar_closes(settings, symbol) == prices, timeout=120, what=f"all {len(prices)} bars of {symbol}")
    assert dead_letters_with_keys(settings, {symbol.encode()}) == []


@pytest.mark.integration
def test_postgres_down_mid_stream_loses_nothing_and_the_risk_agent_keeps_running(provisioned, outage_workers):
    from streams.bus.codecs import CodecRegistry
    from tests.kafka_tools import first_matching, produce, wait_for

    settings = provisioned
    codecs = CodecRegistry(settings.schema_registry_url)
    symbol = f"PG{uuid.uuid4().hex[:6].upper()}"
    prices = [50.0 + n for n in range(8)]
    bars = [codecs.for_topic("market.bars").encode(fixtures.bar(symbol=symbol, ts=day(n), open=p, high=p + 1,
                                                                  low=p - 1, close=p)) for n, p in enumerate(prices)]
    # other parameters than the request answered before the outage: not a cached result, so it reads market_data
    request = fixtures.backtest_request(symbol=symbol, params={"fast": 2.0, "slow": 3.0})
    request_value = codecs.for_topic("backtest.requests").encode(request)
    for value in bars[:3]:
        produce(settings, "market.bars", symbol.encode(), value)
    wait_for(lambda: bar_closes(settings, symbol) == prices[:3], what="the bars before the outage")
    before = fixtures.backtest_request(symbol=symbol)  # mid-stream: the risk worker is answering backtests
    produce(settings, "backtest.requests", before["request_id"].encode(),
            codecs.for_topic("backtest.requests").encode(before))
    first_matching(settings, "backtest.results", lambda r: r["request_id"] == before["request_id"], timeout=120)
    try:
        stopped(settings, "postgres")
        for value in bars[3:6]:
            produce(settings, "market.bars", symbol.encode(), value)
        produce(settings, "backtest.requests", request["request_id"].encode(), request_value)  # reads market_data
        for name in ("persistence", "risk"):  # both wait (the pool gives up on a connection after 10 s)
            wait_for(lambda: "waits: Postgres is unavailable" in outage_workers[name].log(), timeout=60,
                     what=f"the {name} worker to wait for Postgres")
    finally:
        started(settings, "postgres")
        started(settings, "registry")  # its storage is Postgres: it must answer again too
    for value in bars[6:]:
        produce(settings, "market.bars", symbol.encode(), value)
    wait_for(lambda: bar_closes(settings, symbol) == prices, timeout=120, what=f"all {len(prices)} bars of {symbol}")
    result = first_matching(settings, "backtest.results", lambda r: r["request_id"] == request["request_id"],
                            timeout=120)
    assert result["symbol"] == symbol
    assert dead_letters_with_keys(settings, {symbol.encode(), request["request_id"].encode()}) == []
