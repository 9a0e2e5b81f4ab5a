"""streams.bus.gaps: which offsets an agent applies, skips or reads back (unit), and the read-back of
a range of one partition against the real Kafka."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.app import events_without_gaps
from streams.bus.gaps import StreamGaps, classify, committed_offsets, read_range
from streams.errors import ServiceUnavailable
from tests.kafka_tools import produce_many


def test_the_expected_offset_is_applied_a_lower_one_skipped_and_a_higher_one_is_a_gap():
    assert classify(None, 17) == "apply"  # nothing applied yet on this partition
    assert classify(17, 17) == "apply"
    assert classify(17, 16) == "skip" and classify(17, 0, log_end=40) == "skip"
    assert classify(17, 18) == "gap" and classify(17, 500, log_end=501) == "gap"


def test_an_expected_offset_past_the_log_end_means_the_topic_started_over():
    assert classify(900, 3, log_end=10) == "apply"
    assert classify(900, 3, log_end=None) == "skip"  # unknown end: the safe reading is a re-delivery


def test_an_empty_range_reads_nothing_without_asking_the_broker():
    assert read_range({"bootstrap.servers": "127.0.0.1:1"}, "t", 0, 5, 5) == []


def test_an_unreachable_broker_is_a_service_outage():
    config = {"bootstrap.servers": "127.0.0.1:1", "client.id": "gap-test"}
    with pytest.raises(ServiceUnavailable, match=r"t\[0\] 0\.\.3"):
        read_range(config, "t", 0, 0, 3, timeout_s=2)


@pytest.mark.integration
def test_a_range_is_read_back_in_order_and_stops_at_its_end_or_the_log_end(provisioned):
    topic = f"test-gaps-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(provisioned.kafka_config())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    produce_many(provisioned, topic, [(b"k", f"v{i}".encode()) for i in range(10)], partition=1)
    config = provisioned.kafka_config()

    middle = read_range(config, topic, 1, 3, 7)
    assert [(e.message.offset, e.message.value) for e in middle] == [(i, f"v{i}".encode()) for i in range(3, 7)]
    assert {(e.message.topic, e.message.partition, e.message.key) for e in middle} == {(topic, 1, b"k")}
    assert [e.message.offset for e in read_range(config, topic, 1, 8, 50)] == [8, 9]  # the log ends first
    assert read_range(config, topic, 0, 0, 5) == []  # an empty partition


def test_a_stream_guard_finds_what_was_skipped_since_the_start_or_the_last_message():
    guard = StreamGaps(starts={("t", 0): 10})
    assert guard.missing("t", 0, 12) == (10, 12)  # the first message after the assignment is two past its start
    assert guard.missing("t", 0, 13) is None
    assert guard.missing("t", 0, 11) is None and guard.missing("t", 0, 14) is None  # a re-delivery goes through
    assert guard.missing("t", 0, 20) == (15, 20)
    assert guard.missing("t", 1, 7) is None  # no start known (nothing committed): nothing to compare with


def test_a_new_assignment_makes_a_guard_forget_what_it_saw_of_the_newly_assigned_partitions():
    starts = {("t", 0): 10}
    guard = StreamGaps(starts=starts)
    assert guard.missing("t", 0, 10) is None and guard.missing("t", 0, 11) is None
    starts[("t", 0)] = 500  # another worker had it meanwhile and committed up to 500
    guard.forget({("t", 0)})
    assert guard.missing("t", 0, 500) is None
    assert guard.missing("t", 0, 503) == (501, 503)


def test_committed_offsets_of_an_unreachable_broker_are_a_service_outage():
    with pytest.raises(ServiceUnavailable, match="committed offsets"):
        committed_offsets({"bootstrap.servers": "127.0.0.1:1"}, "g", {("t", 0)}, timeout_s=2)


@pytest.mark.integration
def test_events_the_stream_skipped_are_read_back_and_come_before_the_next_one(provisioned):
    """events_without_gaps over a stream that loses offsets 2, 3 and 7 of a real partition: the agent
    still gets every message, in order, the lost ones from the broker."""
    import asyncio
    from types import SimpleNamespace

    from confluent_kafka import TopicPartition

    from streams import app as streams_app
    from tests.kafka_tools import commit_offsets

    topic = f"test-gaps-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(provisioned.kafka_config())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    produce_many(provisioned, topic, [(b"k", f"v{i}".encode()) for i in range(10)], partition=0)
    commit_offsets(provisioned, streams_app.app.conf.id, [TopicPartition(topic, 0, 1)])

    class LossyStream:
        channel = SimpleNamespace(topics=(topic,))

        async def events(self):  # as Faust does: the partition is assigned before its first message
            await streams_app.note_partition_starts(streams_app.app, [SimpleNamespace(topic=topic, partition=0)])
            for offset in (1, 4, 5, 6, 8, 9):
                yield SimpleNamespace(message=SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"k",
                                                              value=f"v{offset}".encode()))

    async def run():
        return [event async for event in events_without_gaps(LossyStream(), "test")]

    events = asyncio.run(run())
    assert [(e.message.offset, e.message.value) for e in events] == [(i, f"v{i}".encode()) for i in range(1, 10)]
