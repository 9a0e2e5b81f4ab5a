"""Helpers for integration tests: publish, wait, and read matching records back from a topic."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.bus.codecs import CodecRegistry, registry_client

ROOT = Path(__file__).resolve().parents[1]


def produce(settings, topic: str, key: bytes, value: bytes) -> tuple[int, int]:
    """Publishes one message (murmur2, like Faust); returns its (partition, offset)."""
    producer = Producer(settings.kafka_config({"acks": "all", "partitioner": "murmur2_random"}))
    delivered = []
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    producer.flush(15)
    [(error, message)] = delivered
    assert error is None, error
    return message.partition(), message.offset()


def produce_many(settings, topic: str, messages: list[tuple[bytes, bytes]], partition: int | None = None) -> None:
    """Publishes (key, value) pairs in order, one flush at the end (murmur2, like Faust, unless a
    partition is given)."""
    producer = Producer(settings.kafka_config({"acks": "all", "partitioner": "murmur2_random",
                                               "enable.idempotence": True, "linger.ms": 5}))
    errors = []
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: err and errors.append(err),
                                 **({} if partition is None else {"partition": partition}))
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0 and not errors, errors[:3]


def wait_for(predicate, timeout: float = 60, every: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def first_matching(settings, topic: str, predicate, timeout: float = 60) -> dict:
    """The first decoded record on `topic` (from the beginning) that satisfies `predicate`."""
    return all_matching(settings, topic, predicate, 1, timeout)[0]


def all_matching(settings, topic: str, predicate, count: int, timeout: float = 60) -> list[dict]:
    """The first `count` decoded records on `topic` (from the beginning) that satisfy `predicate`."""
    deserializer = AvroDeserializer(registry_client(settings.schema_registry_url))
    context = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    found: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            try:
                record = deserializer(message.value(), context)
            except Exception:  # other tests publish undecodable messages on purpose (dead-letter tests)
                continue
            if predicate(record):
                found.append(record)
                if len(found) == count:
                    return found
        pytest.fail(f"{len(found)} of {count} matching records on {topic} within {timeout} s")
    finally:
        consumer.close()


class Worker:
    """`algo worker NAME` in its own process and consumer group (starting at the topic ends).
    With wait=False the caller waits (`wait_ready`), so that several can start at once."""

    def __init__(self, name: str, log_path: Path, wait: bool = True, **env: str) -> None:
        self.name, self.log_path = name, log_path
        self.environment = env
        environment = {**os.environ, "ALGO_APP_ID": f"test-{uuid.uuid4().hex[:8]}", "ALGO_OFFSET_RESET": "latest",
                       "BAR_IDLE_CLOSE_S": "1", **env}
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker", name], cwd=ROOT,
                                            env=environment, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while b"[^Worker]: Ready" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"worker {self.name} did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        assert "Crashed" not in self.log(), self.log()[-3000:]


def ends(settings, topic: str) -> list[TopicPartition]:
    """The current end offset of each partition of `topic` (where the next message will go)."""
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                for p in partitions]
    finally:
        consumer.close()


def commit_offsets(settings, group: str, offsets: list[TopicPartition]) -> None:
    """Sets where consumer group `group` starts (before any of its members runs)."""
    consumer = Consumer(settings.kafka_config({"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def commit_inputs_at_ends(settings, app_id: str, workers) -> None:
    """Each worker's group starts at the current ends of all it reads: a restarted worker resumes where
    the killed one stopped, also on partitions the killed one had not committed yet (with no committed
    offset, ALGO_OFFSET_RESET=latest would jump over everything published while it was down)."""
    from streams.workers import input_topics

    for name in workers:
        commit_offsets(settings, f"{app_id}-{name}", [tp for topic in input_topics(name) for tp in ends(settings, topic)])


def read_from(settings, starts: list[TopicPartition], timeout: float = 30) -> list[tuple[int, dict]]:
    """(broker timestamp in ms, decoded record) of every decodable message from `starts` up to the
    current ends (other tests publish undecodable messages on purpose: those are left out)."""
    from streams.errors import CodecError

    topic = starts[0].topic
    codec = CodecRegistry(settings.schema_registry_url).for_topic(topic)
    stops = {tp.partition: tp.offset for tp in ends(settings, topic)}
    pending = {tp.partition: tp for tp in starts if tp.offset < stops[tp.partition]}
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    out = []
    try:
        consumer.assign(list(pending.values()))
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                pytest.fail(f"{topic}: partitions {sorted(pending)} not read to their ends within {timeout} s")
            message = consumer.poll(0.5)
            if message is None:  # the end may be a gap (compaction, control records): ask where we are
                for tp in consumer.position(list(pending.values())):
                    if tp.offset >= stops[tp.partition]:
                        pending.pop(tp.partition, None)
                continue
            if message.error():
                continue
            if message.offset() >= stops[message.partition()] - 1:
                pending.pop(message.partition(), None)
            if message.offset() >= stops[message.partition()]:
                continue
            try:
                out.append((message.timestamp()[1], codec.decode(message.value())))
            except CodecError:
                continue
    finally:
        consumer.close()
    return out
