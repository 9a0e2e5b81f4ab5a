"""streams.bus.gaps: which offsets an agent applies, skips or reads back (unit), and the read-back of
a range of one partition against the real Kafka."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.bus.gaps import classify, read_range
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
