"""ops/stack/kafka.py and the JVM plumbing it shares with the registry (no services started)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ops.stack import fetch, kafka
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
