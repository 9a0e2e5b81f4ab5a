"""Fault: a 3-node KRaft cluster loses a broker to kill -9 mid-replay and is not given it back
(issue 14, scenario 3).

The test starts a cluster of its own (`algo stack up --brokers 3`'s nodes, on ports 19092/19094/19096
with a run dir under tmp_path) beside the shared stack, whose registry, Postgres and Redis it uses.
Topics get replication factor 3 and min.insync.replicas 2, unclean leader election is off. It
publishes the broker-kill scenario's 100,000 ticks (tests/faults/test_kills.py) with acks=all and
idempotence on, through the bar and persistence workers, and at a fifth acknowledged sends SIGKILL
to the leader of market.ticks partition 0. Two nodes remain, a quorum and an in-sync pair.
Audit: every acknowledged tick on market.ticks once (0 lost, 0 duplicated), every bar whole in
market_data, nothing dead-lettered, no worker crashed; the seconds without an acknowledgement (the
producer) and without a new bar (the bar worker) are what the loss cost.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import replace

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from ops.provision import ensure_topics
from ops.stack.kafka import node_name
from ops.stack.services import services, start_services, stop_service
from tests.faults.harness import stop_all
from tests.faults.results import record_scenario
from tests.faults.test_kills import PacedReplay, assert_none_lost_or_repeated, audit, start_workers
from tests.kafka_tools import ends, read_from, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CLUSTER = "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
NODES = [node_name(n) for n in (1, 2, 3)]


@pytest.fixture
def cluster(provisioned, tmp_path):
    """Settings for a fresh 3-node cluster (the shared registry, Postgres and Redis), topics made."""
    settings = replace(provisioned, kafka_bootstrap=CLUSTER, run_dir=tmp_path / "cluster-run")
    try:
        for part in start_services(settings, NODES, progress=lambda message: print(f"[cluster] {message}", flush=True)):
            assert part.healthy, part.detail
        ensure_topics(settings)
        wait_for(lambda: all_led(settings), timeout=60, what="every topic's partitions led on the new cluster")
        yield settings
    finally:
        for name in NODES:
            stop_service(settings, name)


def all_led(settings) -> bool:
    from streams.bus.topics import ALL_TOPICS

    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    topics = admin.list_topics(timeout=10).topics
    if not all(spec.name in topics and topics[spec.name].partitions
               and all(p.leader >= 0 for p in topics[spec.name].partitions.values()) for spec in ALL_TOPICS):
        return False
    try:  # a leader in the metadata may not serve its partition yet
        for topic in ("market.ticks", "market.bars", "dead-letter"):
            ends(settings, topic)
    except KafkaException:
        return False
    return True


def leader_of(settings, topic: str, partition: int) -> int:
    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    return admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader


def replication(settings, topic: str) -> tuple[int, str]:
    """(replicas of partition 0, the topic's min.insync.replicas) as the cluster reports them."""
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    replicas = len(admin.list_topics(topic, timeout=10).topics[topic].partitions[0].replicas)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result()
    return replicas, config["min.insync.replicas"].value


def longest_gap_s(timestamps_ms: list[int]) -> float:
    ordered = sorted(timestamps_ms)
    return round(max((b - a for a, b in zip(ordered, ordered[1:])), default=0) / 1000, 1)


@pytest.mark.timeout(900)
def test_a_cluster_that_loses_its_leader_goes_on_and_loses_no_acknowledged_tick(cluster, tmp_path):
    assert replication(cluster, "market.ticks") == (3, "2")
    run, app_id = uuid.uuid4().hex[:5].upper(), f"test-{uuid.uuid4().hex[:8]}"
    starts = ends(cluster, "market.ticks")
    bar_starts = ends(cluster, "market.bars")
    workers = start_workers(cluster, app_id, tmp_path, starts, KAFKA_BOOTSTRAP=CLUSTER)
    replay = PacedReplay(cluster, run)
    try:
        replay.start_and_wait_for_a_fifth()
        victim = leader_of(cluster, "market.ticks", 0)
        pid = services(cluster)[node_name(victim)].our_pid()
        assert pid, f"node {victim} is not running"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        replay.finish()
        figures = audit(cluster, replay, starts, run)
        bars = [ts for ts, bar in read_from(cluster, bar_starts, timeout=120) if bar["symbol"].startswith(f"K{run}")]
        new_leader = leader_of(cluster, "market.ticks", 0)
        record_scenario("kafka_cluster_broker_kill_9", {
            "what": "3-node KRaft cluster (RF 3, min ISR 2, unclean election off): SIGKILL to the leader of "
                    "market.ticks[0] mid-replay, not restarted; bars + persistence workers",
            **figures, "killed_node": victim, "new_leader": new_leader,
            "seconds_after_kill_to_last_ack": round(max(t for t, _ in replay.acknowledged) - killed_at, 1),
            "seconds_without_new_bars": longest_gap_s(bars)})
        assert_none_lost_or_repeated(figures)
        assert new_leader not in (victim, -1), "no other broker took market.ticks[0] over"
    finally:
        stop_all(workers)
