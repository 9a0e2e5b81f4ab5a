"""Exactly-once application of a partition's messages to an agent's state, whatever the consumer does.

An agent that keeps state in a table also keeps, per source partition, the offset of the next
message it expects (in the same table, so the changelog restores both together). Each message is
then one of three cases:

- its offset is the expected one: apply it;
- it is below: already applied (a re-delivery after a crash or a rebalance): skip it;
- it is above: messages were skipped by the consumer (faust-streaming loses a message now and then
  when a rebalance hands over a partition: seen in tests/streams/test_scale_out.py); read the
  missing range straight from the broker and apply it first.

The classification is pure; `read_range` is the broker read, with confluent-kafka in a thread.

Agents without such a table use `StreamGaps`, which needs no state of its own: it remembers, per
partition, the offset after the last message its stream yielded, and where the partition started
when this worker was assigned it (the group's committed offset, read at the assignment). A message
above that is a gap: the missing range is read back and handed over first. A message below it is a
re-delivery and goes through (those agents are idempotent: derived ids, sinks that drop repeats).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import ServiceUnavailable
from streams.outages import KAFKA

Verdict = Literal["apply", "skip", "gap"]


def classify(expected: int | None, offset: int, log_end: int | None = None) -> Verdict:
    """What to do with the message at `offset` when `expected` is the next offset the state has
    not applied. `log_end` (the partition's end offset, when known) tells a re-delivery from a
    topic that was deleted and created again: then the expected offset lies past the log's end
    and the message is applied."""
    if expected is None or offset == expected:
        return "apply"
    if offset < expected:
        if log_end is not None and expected > log_end:
            return "apply"  # the topic restarted its offsets: what the state expects no longer exists
        return "skip"
    return "gap"


@dataclass(frozen=True)
class FetchedMessage:
    """A message read outside the stream, with the attributes of faust's Message that the
    dead-letter helpers use."""
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class FetchedEvent:
    message: FetchedMessage


def read_range(kafka_config: Mapping[str, object], topic: str, partition: int, start: int, end: int,
               timeout_s: float = 30.0) -> list[FetchedEvent]:
    """The messages of topic[partition] at offsets start <= offset < end (fewer where retention
    deleted some or offsets hold transaction markers). Blocking: call it in a thread. Raises
    ServiceUnavailable when the broker does not answer within `timeout_s`."""
    if end <= start:
        return []
    consumer = Consumer({**kafka_config, "group.id": f"{kafka_config.get('client.id', 'algo')}-gap-read",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "auto.offset.reset": "earliest", "log_level": 3})
    out: list[FetchedEvent] = []
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return out
                    raise ServiceUnavailable(KAFKA, f"reading {topic}[{partition}] {start}..{end}: {error}")
                if message.offset() >= end:
                    return out
                out.append(FetchedEvent(FetchedMessage(topic, partition, message.offset(), message.key(),
                                                       message.value())))
                if message.offset() == end - 1:
                    return out
        raise ServiceUnavailable(KAFKA, f"reading {topic}[{partition}] {start}..{end}: no answer in {timeout_s:.0f} s")
    except KafkaException as error:
        raise ServiceUnavailable(KAFKA, f"reading {topic}[{partition}] {start}..{end}: {error}") from error
    finally:
        consumer.close()


@dataclass
class StreamGaps:
    """Per (topic, partition): the offset after the last message a stream yielded, for one stream.
    `starts` are the committed offsets read when partitions were assigned (shared by the worker's
    streams, reset at each assignment through `forget`)."""
    starts: dict[tuple[str, int], int] = field(default_factory=dict)
    topics: frozenset[str] = frozenset()
    expected: dict[tuple[str, int], int] = field(default_factory=dict)

    def missing(self, topic: str, partition: int, offset: int) -> tuple[int, int] | None:
        """The range [start, offset) the stream skipped before this message, or None; then notes it."""
        key = (topic, partition)
        start = self.expected.get(key, self.starts.get(key))
        self.expected[key] = max(offset + 1, self.expected.get(key, 0))
        if start is None or start < 0 or offset <= start:
            return None
        return start, offset

    def forget(self, assigned: set[tuple[str, int]]) -> None:
        """A new assignment: what this stream noted of the newly assigned partitions no longer holds."""
        for key in assigned:
            self.expected.pop(key, None)


def committed_offsets(kafka_config: Mapping[str, object], group: str,
                      partitions: set[tuple[str, int]], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """Group `group`'s committed offset of each (topic, partition) that has one. Blocking: call it in
    a thread. Reading offsets does not join the group."""
    if not partitions:
        return {}
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False, "log_level": 3})
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in sorted(partitions)], timeout=timeout_s)
    except KafkaException as error:
        raise ServiceUnavailable(KAFKA, f"reading {group}'s committed offsets: {error}") from error
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}
