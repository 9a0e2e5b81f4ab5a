"""The bridge's retry loops (tenacity): the hub's Kafka consumer reconnects with backoff, the
publisher waits out a full producer queue, then gives up with PublishUnavailable."""
from __future__ import annotations

import asyncio
import logging
import time

import aiokafka
import pytest

from streams.bridge.hub import StreamHub
from streams.bridge.publish import Publisher, PublishUnavailable
from streams.settings import Settings


class FlakyConsumer:
    """Stands in for AIOKafkaConsumer: start() fails the first `failures` times; a session that
    started fails on its first fetch when `lose` is set."""
    starts: list[float] = []
    failures = 2
    lose = False

    def __init__(self, *args, **kwargs) -> None:
        pass

    async def start(self) -> None:
        FlakyConsumer.starts.append(time.monotonic())
        if len(FlakyConsumer.starts) <= FlakyConsumer.failures:
            raise ConnectionError("broker down")

    async def stop(self) -> None:
        pass

    def assign(self, partitions) -> None:
        pass

    def seek(self, tp, offset) -> None:
        pass

    async def getmany(self, **kwargs):
        if FlakyConsumer.lose:
            FlakyConsumer.lose = False
            raise ConnectionError("connection lost")
        await asyncio.sleep(0.05)
        return {}


async def test_the_hub_consumer_reconnects_with_backoff(monkeypatch, caplog):
    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", FlakyConsumer)
    FlakyConsumer.starts = []
    hub = StreamHub(Settings(), heartbeat_s=0)
    hub._positions = {("t", 0): 0}  # something assigned, so the session fetches
    caplog.set_level(logging.WARNING, logger="algo.bridge.stream")
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 10)
        first, second, third = FlakyConsumer.starts[:3]
        assert 0.4 < second - first < 0.9 and 0.9 < third - second < 1.6  # 0.5 s, then 1 s
        assert "broker down; retrying in 0.5 s" in caplog.text and "retrying in 1.0 s" in caplog.text
        # a session that had connected and is lost reconnects at once (the backoff starts afresh)
        FlakyConsumer.lose = True
        while len(FlakyConsumer.starts) < 4:
            await asyncio.sleep(0.01)
        assert FlakyConsumer.starts[3] - third < 0.5
        assert "connection lost; reconnecting" in caplog.text
        await asyncio.wait_for(hub.connected.wait(), 5)
    finally:
        await hub.stop()


class FullQueueProducer:
    def __init__(self, full_for: int) -> None:
        self.full_for = full_for
        self.calls = 0

    def produce(self, topic, key, value, on_delivery) -> None:
        self.calls += 1
        if self.calls <= self.full_for:
            raise BufferError("Local: Queue full")
        on_delivery(None, type("Message", (), {"partition": lambda self: 0, "offset": lambda self: 7})())


class StaticCodecs:
    def for_topic(self, topic):
        return type("Codec", (), {"encode": staticmethod(lambda record: b"avro")})()


async def test_a_full_producer_queue_is_waited_out_then_refused():
    publisher = Publisher(Settings(), codecs=StaticCodecs(), delivery_timeout_s=1)
    publisher._producer = FullQueueProducer(full_for=3)
    delivered = await publisher.publish("market.ticks", [("AAPL", {})])
    assert [(d.key, d.partition, d.offset) for d in delivered] == [("AAPL", 0, 7)]
    assert publisher._producer.calls == 4
    publisher._producer = FullQueueProducer(full_for=10**6)
    start = time.monotonic()
    with pytest.raises(PublishUnavailable, match="queue stays full"):
        await publisher.publish("market.ticks", [("AAPL", {})])
    assert publisher._producer.calls == 50 and time.monotonic() - start < 5
