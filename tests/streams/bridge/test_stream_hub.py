"""The websocket hub without Kafka: commands, filters, resume from the rings, slow clients."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType

from streams.bridge.metrics import BridgeMetrics
from streams.bridge.hub import CLOSE_TRY_AGAIN_LATER, Command, CommandError, StreamHub, event_symbols, parse_command
from streams.settings import Settings


class FakeSocket:
    """Records what the hub sends; `stall()` makes sends hang like a client that stopped reading."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.closed_with: tuple[int, bytes] | None = None
        self._gate = asyncio.Event()
        self._gate.set()

    async def send_frame(self, payload: bytes, opcode: WSMsgType) -> None:
        await self._gate.wait()
        assert opcode == WSMsgType.TEXT  # browsers' JSON.parse wants text frames
        self.sent.append(json.loads(payload))

    async def close(self, code: int = 1000, message: bytes = b"") -> None:
        self.closed_with = (code, message)

    def stall(self) -> None:
        self._gate.clear()

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.sent if m["type"] == kind]


class FakeTransport:
    """What the hub asks of a connection's transport: whether it has data buffered."""

    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False


def make_hub(**kwargs) -> StreamHub:
    kwargs.setdefault("heartbeat_s", 0)
    return StreamHub(Settings(), kafka=False, metrics=BridgeMetrics(), **kwargs)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def tick(symbol: str, price: float) -> dict:
    return {"symbol": symbol, "price": price}


def test_parse_command():
    assert parse_command('{"action": "subscribe", "topics": ["market.bars"], "symbols": ["AAPL"], "since": 5}') == \
        Command("subscribe", ("market.bars",), frozenset({"AAPL"}), 5)
    assert parse_command('{"action": "subscribe", "topics": "fills", "symbols": []}') == Command("subscribe", ("fills",))
    assert parse_command('{"action": "ping"}').action == "ping"
    for bad, words in [
        ("nope", "not JSON"), ("[]", "JSON object"), ('{"action": "dance"}', "unknown action"),
        ('{"action": "subscribe"}', "topics"), ('{"action": "subscribe", "topics": ["nope"]}', "unknown topic"),
        ('{"action": "subscribe", "topics": ["fills"], "symbols": ["a b"]}', "not a symbol"),
        ('{"action": "subscribe", "topics": ["fills"], "symbols": ["AAPL\\n"]}', "not a symbol"),
        ('{"action": "subscribe", "topics": ["fills"], "since": -1}', "since"),
        ('{"action": "subscribe", "topics": ["fills"], "since": true}', "since"),
        ('{"action": "subscribe", "topics": ["fills"], "colour": 1}', "unknown field"),
    ]:
        with pytest.raises(CommandError, match=words):
            parse_command(bad)


def test_event_symbols():
    assert event_symbols("market.ticks", "AAPL", {"symbol": "AAPL"}) == {"AAPL"}
    assert event_symbols("news.items", "id-1", {"symbols": ["AAPL", "MSFT"]}) == {"AAPL", "MSFT"}
    assert event_symbols("backtest.results", "req", {"symbol": "IBM"}) == {"IBM"}
    assert event_symbols("agent.logs", "bars", {"message": "hi"}) is None


async def test_subscribers_get_what_they_asked_for_in_order():
    hub = make_hub()
    a, b = FakeSocket(), FakeSocket()
    ca, cb = hub.attach(a, "a"), hub.attach(b, "b")
    await hub.handle(ca, json.dumps({"action": "subscribe", "topics": ["market.ticks"], "symbols": ["AAPL"]}))
    await hub.handle(cb, json.dumps({"action": "subscribe", "topics": ["market.ticks", "fills"]}))
    hub.emit("market.ticks", "AAPL", 0, 1, 1000, tick("AAPL", 1.0))
    hub.emit("market.ticks", "MSFT", 1, 1, 1000, tick("MSFT", 2.0))
    hub.emit("fills", "AAPL", 0, 9, 1000, {"symbol": "AAPL", "price": float("nan")})
    await settle()
    assert [m["type"] for m in a.sent] == ["hello", "subscribed", "event"]
    assert a.of_type("event")[0]["value"] == {"symbol": "AAPL", "price": 1.0}
    events = b.of_type("event")
    assert [(e["topic"], e["key"]) for e in events] == [("market.ticks", "AAPL"), ("market.ticks", "MSFT"), ("fills", "AAPL")]
    assert events[2]["value"]["price"] is None  # NaN is not JSON
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert set(events[0]) >= {"id", "topic", "key", "partition", "offset", "timestamp", "value"}
    await hub.stop()


async def test_unsubscribe_and_errors_are_replies():
    hub = make_hub()
    ws = FakeSocket()
    client = hub.attach(ws)
    await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["market.ticks"], "symbols": ["AAPL", "IBM"]}))
    await hub.handle(client, json.dumps({"action": "unsubscribe", "topics": ["market.ticks"], "symbols": ["AAPL"]}))
    hub.emit("market.ticks", "AAPL", 0, 1, None, tick("AAPL", 1))
    hub.emit("market.ticks", "IBM", 0, 2, None, tick("IBM", 1))
    await hub.handle(client, json.dumps({"action": "unsubscribe", "topics": ["market.ticks"]}))
    hub.emit("market.ticks", "IBM", 0, 3, None, tick("IBM", 1))
    await hub.handle(client, "garbage")
    await hub.handle(client, '{"action": "ping"}')
    await settle()
    assert [e["key"] for e in ws.of_type("event")] == ["IBM"]
    assert ws.of_type("unsubscribed")[-1]["topics"] == {}
    assert "not JSON" in ws.of_type("error")[0]["error"]
    assert ws.of_type("pong")
    await hub.stop()


async def test_resume_replays_missed_events_then_live_ones():
    hub = make_hub(ring_size=5)
    first = FakeSocket()
    client = hub.attach(first)
    await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["market.ticks", "fills"]}))
    seen = hub.emit("market.ticks", "AAPL", 0, 1, None, tick("AAPL", 1)).id
    await settle()
    await hub.detach(client)
    missed = [hub.emit("market.ticks", "AAPL", 0, 2, None, tick("AAPL", 2)).id,
              hub.emit("fills", "AAPL", 0, 1, None, {"symbol": "AAPL"}).id,
              hub.emit("market.ticks", "MSFT", 1, 1, None, tick("MSFT", 3)).id]
    again = FakeSocket()
    client = hub.attach(again)
    await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["market.ticks", "fills"],
                                         "symbols": ["AAPL"], "since": seen}))
    live = hub.emit("market.ticks", "AAPL", 0, 3, None, tick("AAPL", 4)).id
    await settle()
    assert again.of_type("subscribed")[0]["replayed"] == 2
    assert [e["id"] for e in again.of_type("event")] == [missed[0], missed[1], live]
    assert not again.of_type("gap")
    # more than the ring holds was missed: a gap notice says so
    for offset in range(10):
        hub.emit("market.ticks", "AAPL", 0, 10 + offset, None, tick("AAPL", 5))
    late = FakeSocket()
    client = hub.attach(late)
    await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["market.ticks"], "since": live}))
    await settle()
    [gap] = late.of_type("gap")
    assert gap["topic"] == "market.ticks" and gap["oldest_id"] == late.of_type("event")[0]["id"]
    assert len(late.of_type("event")) == 5
    await hub.stop()


async def test_ids_increase_across_hubs():
    first = make_hub()
    last = first.emit("fills", "A", 0, 0, None, {}).id
    await asyncio.sleep(0.001)
    assert make_hub().emit("fills", "A", 0, 0, None, {}).id > last


async def test_a_slow_client_is_dropped_without_holding_up_the_others():
    hub = make_hub(queue_size=10)
    slow, fast = FakeSocket(), FakeSocket()
    slow_client, fast_client = hub.attach(slow, "slow"), hub.attach(fast, "fast")
    for client in (slow_client, fast_client):
        await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["consensus.decisions"]}))
    await settle()
    slow.stall()
    for i in range(30):
        hub.emit("consensus.decisions", "AAPL", 0, i, None, {"symbol": "AAPL", "n": i})
        await settle()
    assert len(fast.of_type("event")) == 30
    assert slow.closed_with is not None and slow.closed_with[0] == CLOSE_TRY_AGAIN_LATER
    assert b"too slow" in slow.closed_with[1]
    assert slow_client not in hub.clients and fast_client in hub.clients
    assert len(slow_client.pending) == 0  # its backlog is freed
    assert hub.metrics.ws_dropped_clients._value.get() == 1
    await hub.stop()


async def test_clients_that_keep_up_are_sent_inline_and_a_backed_up_one_does_not_hold_them():
    """With transports: a client whose socket has nothing buffered is sent to by the hub's flusher in
    one pass; one with data buffered (a peer that stopped reading) gets its own writer, waits there on
    flow control, fills its queue and is dropped, while the others get every event."""
    hub = make_hub(queue_size=5)
    sockets = [FakeSocket() for _ in range(50)]
    transports = [FakeTransport() for _ in sockets]
    clients = [hub.attach(ws, f"c{i}", transport) for i, (ws, transport) in enumerate(zip(sockets, transports))]
    for client in clients:
        await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["fills"]}))
    await settle()
    stuck, stuck_transport = sockets[0], transports[0]
    stuck.stall()
    stuck_transport.buffered = 1 << 20
    for i in range(20):
        hub.emit("fills", "AAPL", 0, i, None, {"symbol": "AAPL", "n": i})
        await settle()
    for ws in sockets[1:]:
        assert [e["value"]["n"] for e in ws.of_type("event")] == list(range(20))
    assert stuck.closed_with is not None and stuck.closed_with[0] == CLOSE_TRY_AGAIN_LATER
    assert clients[0] not in hub.clients and clients[0].writing  # it was left to its writer
    assert not any(c.writing for c in clients[1:])  # the others never needed one
    await hub.stop()


async def test_a_kafka_batch_larger_than_the_queue_does_not_drop_a_client_that_keeps_up():
    from types import SimpleNamespace

    class Codecs:
        def for_topic(self, topic):
            return SimpleNamespace(decode=lambda value: {"symbol": "AAPL", "n": int(value)})

    hub = StreamHub(Settings(), kafka=False, metrics=BridgeMetrics(), heartbeat_s=0, queue_size=10, codecs=Codecs())
    ws = FakeSocket()
    client = hub.attach(ws, "reader", FakeTransport())
    await hub.handle(client, json.dumps({"action": "subscribe", "topics": ["fills"]}))
    from aiokafka import TopicPartition

    tp = TopicPartition("fills", 0)
    batch = [SimpleNamespace(key=b"AAPL", value=str(i).encode(), offset=i, timestamp=0) for i in range(50)]
    await hub._dispatch({tp: batch})
    await settle()
    assert [e["value"]["n"] for e in ws.of_type("event")] == list(range(50))
    assert client in hub.clients and ws.closed_with is None
    await hub.stop()


async def test_heartbeats_reach_every_client():
    hub = make_hub(heartbeat_s=0.05)
    await hub.start()
    ws = FakeSocket()
    hub.attach(ws)
    await asyncio.sleep(0.2)
    beats = ws.of_type("heartbeat")
    assert beats and "last_id" in beats[0] and "ts" in beats[0]
    await hub.stop()


async def test_client_limit():
    from streams.bridge.hub import HubUnavailable

    hub = make_hub(max_clients=1)
    hub.attach(FakeSocket())
    with pytest.raises(HubUnavailable, match="too many"):
        hub.attach(FakeSocket())
    await hub.stop()
