"""ops/stack/kafka.py and the JVM plumbing it shares with the registry (no services started)."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from ops.stack import fetch, kafka
from streams.errors import StackError
from streams.settings import Settings


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_server_properties_follow_settings(settings: Settings) -> None:
    broker = kafka.Kafka(settings)
    port = settings.kafka_host_port[1]
    props = _properties(broker.server_properties())
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{port + 1}"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert props["log.dirs"] == str(Path(settings.run_dir).absolute() / "kafka" / "data")
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "min.insync.replicas", "default.replication.factor"):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "3"
    assert broker.ports() == [port, port + 1]
    assert broker.endpoint() == f"127.0.0.1:{port}"


def test_kafka_command_and_cache_key(settings: Settings) -> None:
    broker = kafka.Kafka(settings)
    libs = fetch.kafka_libs_dir(settings)
    assert libs.parent.parent == Path(settings.cache_dir)
    assert libs.parent.name.startswith(f"kafka-{fetch.KAFKA_VERSION}-") and libs.name == "libs"
    cmd = broker.command()
    assert cmd[-2:] == ["kafka.Kafka", str(broker.properties)]
    assert "-Xmx512m" in cmd
    assert f"-Dlog4j.configuration=file:{kafka.KAFKA_LOG4J}" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{libs}/*"
    assert kafka.KAFKA_LOG4J.exists() and fetch.KAFKA_POM.exists()
    assert broker.marker() in " ".join(cmd)


def test_cluster_id_is_kept(settings: Settings) -> None:
    first = kafka.Kafka(settings).cluster_id()
    assert len(first) == 22 and not first.startswith("-")
    assert kafka.Kafka(settings).cluster_id() == first


def test_cds_archive_is_made_once_and_kept_only_after_a_clean_exit(settings: Settings) -> None:
    broker = kafka.Kafka(settings)
    broker.dir.mkdir(parents=True)
    java = shutil.which("java") or "/usr/bin/java"
    first = broker.cds_flags(java, "cp")
    assert first[0].startswith("-XX:ArchiveClassesAtExit=") and first[0].endswith(".jsa.tmp")
    tmp = Path(first[0].split("=", 1)[1])
    tmp.write_bytes(b"archive")
    broker.settle_cds(clean_exit=True)
    assert broker.cds_flags(java, "cp")[0] == f"-XX:SharedArchiveFile={tmp.with_suffix('')}"
    assert broker.cds_flags(java, "other classpath")[0].startswith("-XX:ArchiveClassesAtExit=")
    assert not tmp.with_suffix("").exists()  # an archive for another classpath is dropped
    Path(broker.cds_flags(java, "cp")[0].split("=", 1)[1]).write_bytes(b"half")
    broker.settle_cds(clean_exit=False)
    assert not list(broker.dir.glob("*.jsa*"))


def test_failure_message_has_log_tail_and_hint(settings: Settings) -> None:
    broker = kafka.Kafka(settings)
    broker.dir.mkdir(parents=True)
    broker.log.write_text("\n".join(f"line {i}" for i in range(100)) + "\nAddress already in use\n")
    message = str(broker.failure("exited during start"))
    assert message.startswith("kafka: exited during start")
    assert "line 99" in message and "line 60" not in message
    assert str(broker.log) in message


def _cluster(settings: Settings) -> Settings:
    return dataclasses.replace(settings, kafka_bootstrap=kafka.expanded_bootstrap(settings, 3))


def test_three_brokers_are_one_cluster_with_three_copies_and_two_in_sync(settings: Settings) -> None:
    port = settings.kafka_host_port[1]
    cluster = _cluster(settings)
    assert cluster.kafka_bootstrap == f"127.0.0.1:{port},127.0.0.1:{port + 2},127.0.0.1:{port + 4}"
    nodes = kafka.kafka_nodes(cluster)
    assert [node.name for node in nodes] == ["kafka", "kafka-2", "kafka-3"]
    voters = f"1@127.0.0.1:{port + 1},2@127.0.0.1:{port + 3},3@127.0.0.1:{port + 5}"
    for number, node in enumerate(nodes, start=1):
        props = _properties(node.server_properties())
        node_port = port + 2 * (number - 1)
        assert props["node.id"] == str(number) and props["controller.quorum.voters"] == voters
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{node_port},CONTROLLER://127.0.0.1:{node_port + 1}"
        assert node.ports() == [node_port, node_port + 1]
        assert props["log.dirs"] == str(Path(settings.run_dir).absolute() / node.name / "data")
        for key in ("default.replication.factor", "offsets.topic.replication.factor",
                    "transaction.state.log.replication.factor"):
            assert props[key] == "3", key
        assert props["min.insync.replicas"] == "2" and props["transaction.state.log.min.isr"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        assert node.cluster_id() == nodes[0].cluster_id()  # one cluster id, kept by node 1
    assert cluster.replication_factor == 3 and settings.replication_factor == 1


def test_brokers_flag_takes_the_addresses_named_or_counts_on_from_one(settings: Settings) -> None:
    assert kafka.expanded_bootstrap(settings, 1) == settings.kafka_bootstrap.removeprefix("kafka://")
    named = dataclasses.replace(settings, kafka_bootstrap="127.0.0.1:9200,127.0.0.1:9300")
    assert kafka.expanded_bootstrap(named, 2) == "127.0.0.1:9200,127.0.0.1:9300"
    with pytest.raises(StackError, match="KAFKA_BOOTSTRAP names 2 brokers"):
        kafka.expanded_bootstrap(named, 3)
    with pytest.raises(StackError, match="at least one"):
        kafka.expanded_bootstrap(settings, 0)


def test_a_run_dir_keeps_the_nodes_it_was_formatted_for(settings: Settings) -> None:
    cluster = _cluster(settings)
    first = kafka.kafka_nodes(cluster)[0]
    first.check_addresses()  # the first start records the three addresses
    assert kafka.recorded_addresses(first.run_dir) == first.addresses
    # one address, node 1's: the whole recorded cluster (so `algo stack down` stops every node)
    assert [node.name for node in kafka.kafka_nodes(settings)] == ["kafka", "kafka-2", "kafka-3"]
    other = dataclasses.replace(settings, kafka_bootstrap=f"127.0.0.1:{settings.kafka_host_port[1] + 10}")
    with pytest.raises(StackError, match="holds a Kafka of 3 node"):
        kafka.kafka_nodes(other)[0].check_addresses()


def test_a_single_broker_formatted_before_nodes_were_recorded_stays_single(settings: Settings) -> None:
    data = Path(settings.run_dir).absolute() / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("node.id=1\n")
    kafka.Kafka(settings).check_addresses()  # the same single broker: fine, and not recorded as anything else
    with pytest.raises(StackError, match="holds a Kafka of 1 node"):
        kafka.kafka_nodes(_cluster(settings))[0].check_addresses()
