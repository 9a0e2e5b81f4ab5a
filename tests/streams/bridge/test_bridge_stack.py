"""The bridge against the real local stack: publish through REST into Kafka, read Postgres, stream
Kafka to websockets (live and resumed)."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone

import aiohttp
import psycopg
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition

from streams.bus.codecs import CodecRegistry
from tests.streams.bridge.helpers import BridgeThread, unique_symbol
from tests.fixtures import decision, fill
from tests.kafka_tools import produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bridge(provisioned):
    with BridgeThread(provisioned) as running:
        yield running


def read_at(settings, topic: str, partition: int, offset: int) -> tuple[bytes, bytes]:
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                return message.key(), message.value()
        pytest.fail(f"nothing at {topic}[{partition}]@{offset}")
    finally:
        consumer.close()


def test_ready(bridge):
    body = requests.get(f"{bridge.url}/readyz", timeout=10).json()
    assert body["ready"] and all(check["ok"] for check in body["checks"].values())


def test_posted_ticks_land_in_kafka_avro_encoded_on_the_symbols_partition(bridge, provisioned):
    symbol = unique_symbol()
    response = requests.post(f"{bridge.url}/v1/ticks", headers=bridge.auth, timeout=30, json=[
        {"symbol": symbol, "ts": "2013-03-01T14:30:00Z", "price": 101.25, "size": 10, "source": "t", "seq": 3},
        {"symbol": symbol, "ts": 1_362_148_260_000_000, "price": 101.5, "size": 5}])
    assert response.status_code == 202, response.text
    deliveries = response.json()["deliveries"]
    assert len({d["partition"] for d in deliveries}) == 1
    # murmur2 like Faust and `algo replay`: a reference message with the same key lands on the same partition
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    reference_partition, _ = produce(provisioned, "market.ticks", symbol.encode(), codec.encode(
        {"symbol": symbol, "ts": datetime(2013, 3, 1, tzinfo=timezone.utc), "price": 1.0, "size": 1.0,
         "source": "reference", "seq": -1}))
    assert deliveries[0]["partition"] == reference_partition
    key, value = read_at(provisioned, "market.ticks", deliveries[0]["partition"], deliveries[0]["offset"])
    assert key == symbol.encode()
    assert codec.decode(value) == {"symbol": symbol, "ts": datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc),
                                   "price": 101.25, "size": 10.0, "source": "t", "seq": 3}
    second = codec.decode(read_at(provisioned, "market.ticks", deliveries[1]["partition"], deliveries[1]["offset"])[1])
    assert (second["source"], second["seq"], second["ts"]) == ("bridge", -1, datetime(2013, 3, 1, 14, 31, tzinfo=timezone.utc))


def test_posted_news_is_keyed_by_id(bridge, provisioned):
    news_id = f"bridge-test-{uuid.uuid4()}"
    response = requests.post(f"{bridge.url}/v1/news", headers=bridge.auth, timeout=30, json={
        "id": news_id, "ts": "2013-03-01T12:00:00Z", "headline": "Apple beats estimates", "symbols": ["AAPL"]})
    assert response.status_code == 202, response.text
    [delivery] = response.json()["deliveries"]
    key, value = read_at(provisioned, "news.items", delivery["partition"], delivery["offset"])
    assert key == news_id.encode()
    record = CodecRegistry(provisioned.schema_registry_url).for_topic("news.items").decode(value)
    assert record["headline"] == "Apple beats estimates" and record["symbols"] == ["AAPL"]


def test_bad_input_is_400_and_never_reaches_kafka(bridge):
    response = requests.post(f"{bridge.url}/v1/ticks", headers=bridge.auth, timeout=30,
                             json={"symbol": "AAPL", "ts": "2013-03-01", "price": 0, "size": 1})
    assert response.status_code == 400
    assert response.json()["field"] == "price"


async def _receive(ws, kind: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(ws.receive(), max(0.1, deadline - time.monotonic()))
        if message.type != aiohttp.WSMsgType.TEXT:
            pytest.fail(f"websocket closed while waiting for {kind}: {message}")
        body = json.loads(message.data)
        if body["type"] == kind:
            return body


async def test_websocket_streams_decoded_events_and_resumes(bridge, provisioned):
    symbol = unique_symbol()
    codecs = CodecRegistry(provisioned.schema_registry_url)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{bridge.url}/v1/stream?token={bridge.token}") as ws:
            await _receive(ws, "hello")
            await ws.send_json({"action": "subscribe", "topics": ["market.ticks", "consensus.decisions"],
                                "symbols": [symbol]})
            await _receive(ws, "subscribed")
            # a tick through REST, a decision straight into Kafka (as the consensus agent writes it)
            async with session.post(f"{bridge.url}/v1/ticks", headers=bridge.auth,
                                    json={"symbol": symbol, "ts": "2013-03-01T14:30:00Z", "price": 50.5, "size": 1}) as r:
                assert r.status == 202
            record = decision(symbol=symbol)
            await asyncio.to_thread(produce, provisioned, "consensus.decisions", symbol.encode(),
                                    codecs.for_topic("consensus.decisions").encode(record))
            tick_event = await _receive(ws, "event")
            decision_event = await _receive(ws, "event")
        assert (tick_event["topic"], tick_event["key"], tick_event["value"]["price"]) == ("market.ticks", symbol, 50.5)
        assert tick_event["value"]["ts"] == "2013-03-01T14:30:00+00:00"
        assert decision_event["topic"] == "consensus.decisions"
        assert decision_event["value"]["decision_id"] == record["decision_id"]
        assert decision_event["value"]["votes"][0]["agent"] == "technical"
        assert decision_event["id"] > tick_event["id"]

        # while disconnected: two more ticks; a resumed subscription gets them first, then live ones
        async with session.post(f"{bridge.url}/v1/ticks", headers=bridge.auth, json=[
                {"symbol": symbol, "ts": "2013-03-02T14:30:00Z", "price": p, "size": 1} for p in (51.0, 52.0)]) as r:
            assert r.status == 202
        await asyncio.sleep(1.0)
        async with session.ws_connect(f"{bridge.url}/v1/stream", headers=bridge.auth) as ws:
            await ws.send_json({"action": "subscribe", "topics": ["market.ticks"], "symbols": [symbol],
                                "since": decision_event["id"]})
            ack = await _receive(ws, "subscribed")
            assert ack["replayed"] == 2
            replayed = [await _receive(ws, "event"), await _receive(ws, "event")]
            assert [e["value"]["price"] for e in replayed] == [51.0, 52.0]
            async with session.post(f"{bridge.url}/v1/ticks", headers=bridge.auth,
                                    json={"symbol": symbol, "ts": "2013-03-03T14:30:00Z", "price": 53.0, "size": 1}) as r:
                assert r.status == 202
            live = await _receive(ws, "event")
            assert live["value"]["price"] == 53.0 and live["id"] > replayed[-1]["id"]


@pytest.fixture
def book_rows(provisioned):
    """Decisions, a verdict, positions and an account written straight into Postgres (and removed after)."""
    symbol, account = unique_symbol(), f"bridge-test-{uuid.uuid4().hex[:8]}"
    decision_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    votes = [{"signal_id": "s1", "agent": "technical", "action": "BUY", "confidence": 0.7, "weight": 1.0}]
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        for i, decision_id in enumerate(decision_ids):
            conn.execute("INSERT INTO decisions VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (decision_id, symbol, datetime(2013, 3, 1 + i, tzinfo=timezone.utc), "BUY", 0.5, 1.0,
                          json.dumps(votes), "1 of 1 agents"))
        conn.execute("INSERT INTO risk_verdicts (verdict_id, decision_id, symbol, ts, verdict, requested_quantity, "
                     "approved_quantity, reason_codes) VALUES (%s, %s, %s, %s, 'RESIZE', 100, 40, %s)",
                     (str(uuid.uuid4()), decision_ids[1], symbol, datetime(2013, 3, 2, tzinfo=timezone.utc),
                      ["NOTIONAL_CAP"]))
        conn.execute("INSERT INTO accounts (account, cash, equity, realised_pnl, unrealised_pnl, fees) "
                     "VALUES (%s, 90000, 101234.5, 1000, 234.5, 12.25)", (account,))
        conn.execute("INSERT INTO positions (account, symbol, quantity, avg_price, last_price, unrealised_pnl) "
                     "VALUES (%s, %s, 40, 100, 105.8625, 234.5)", (account, symbol))
    yield symbol, account, decision_ids
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM risk_verdicts WHERE symbol = %s", (symbol,))
        conn.execute("DELETE FROM decisions WHERE symbol = %s", (symbol,))
        conn.execute("DELETE FROM positions WHERE account = %s", (account,))
        conn.execute("DELETE FROM accounts WHERE account = %s", (account,))


def test_reads_from_the_vault(bridge, book_rows):
    symbol, account, decision_ids = book_rows
    get = lambda path, **params: requests.get(f"{bridge.url}{path}", params=params, headers=bridge.auth, timeout=30)  # noqa: E731
    decisions = get("/v1/decisions", symbol=symbol, limit=10).json()["decisions"]
    assert [d["decision_id"] for d in decisions] == decision_ids[::-1]  # newest first
    assert decisions[0]["verdict"] == "RESIZE" and decisions[0]["approved_quantity"] == 40.0
    assert decisions[0]["reason_codes"] == ["NOTIONAL_CAP"] and decisions[1]["verdict"] is None
    assert decisions[0]["votes"][0] == {"signal_id": "s1", "agent": "technical", "action": "BUY", "confidence": 0.7,
                                        "weight": 1.0}
    assert len(get("/v1/decisions", symbol=symbol, limit=1).json()["decisions"]) == 1
    [position] = get("/v1/positions", account=account).json()["positions"]
    assert (position["symbol"], position["quantity"], position["last_price"]) == (symbol, 40.0, 105.8625)
    pnl = get("/v1/pnl", account=account).json()
    assert pnl["accounts"][0]["equity"] == 101234.5 and pnl["totals"]["unrealised_pnl"] == 234.5
    agents = get("/v1/agents").json()
    assert {"agents", "consumer_groups", "lag_error"} <= set(agents) and agents["lag_error"] is None
    assert all(group["lag"] >= 0 for group in agents["consumer_groups"])
    assert get("/v1/fills", limit=5).status_code == 200
    assert get("/v1/bars", symbol="AAPL", limit=5).status_code == 200


def test_the_persisted_fill_is_readable(bridge, provisioned):
    record = fill(symbol=unique_symbol(), account=f"bridge-test-{uuid.uuid4().hex[:8]}")
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO fills VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                     tuple(record[k] for k in ("fill_id", "order_id", "account", "symbol", "ts", "side", "quantity",
                                               "price", "fee")))
    try:
        fills = requests.get(f"{bridge.url}/v1/fills", params={"account": record["account"]}, headers=bridge.auth,
                             timeout=30).json()["fills"]
        assert [(f["fill_id"], f["price"]) for f in fills] == [(record["fill_id"], 100.0)]
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM fills WHERE fill_id = %s", (record["fill_id"],))


def test_metrics_after_traffic(bridge):
    text = requests.get(f"{bridge.url}/metrics", timeout=10).text
    assert 'algo_bridge_published_messages_total{topic="market.ticks"}' in text
    assert "algo_bridge_fanout_latency_seconds_count" in text
