"""Kafka in KRaft mode: one node per address of KAFKA_BOOTSTRAP, each a broker and a controller, on its
port and port+1. One address is the default single broker; three (`algo stack up --brokers 3`) are a
cluster with replication factor 3, min.insync.replicas 2 and unclean leader election off.

Node 1 lives in <run_dir>/kafka, node n in <run_dir>/kafka-n; <run_dir>/kafka/cluster.id is the
cluster's id and <run_dir>/kafka/nodes the addresses its storage was formatted for (a quorum cannot
change its voters by a restart, so another set of addresses is refused)."""
from __future__ import annotations

import base64
import dataclasses
import logging
import os
import uuid
from pathlib import Path

from streams.errors import StackError

from ops.stack import fetch
from ops.stack.fetch import JVM_COMMON, KAFKA_JAVA, KAFKA_VERSION, OPS_DIR, fetch_kafka, kafka_libs_dir
from ops.stack.process import Progress, port_open, require_loopback, run
from ops.stack.service import Service

KAFKA_LOG4J = OPS_DIR / "conf" / "kafka-log4j.properties"
KAFKA_HEAP = ("-Xms128m", "-Xmx512m")


def node_name(node: int) -> str:
    return "kafka" if node == 1 else f"kafka-{node}"


def expanded_bootstrap(settings, brokers: int) -> str:
    """KAFKA_BOOTSTRAP for a local cluster of `brokers` nodes: the addresses it names when it names
    that many, else nodes on every second port from its first (9092, 9094, 9096: port+1 is each
    node's controller)."""
    addresses = settings.kafka_addresses
    if brokers < 1:
        raise StackError(f"--brokers {brokers}: a cluster has at least one broker")
    if len(addresses) == brokers:
        return ",".join(f"{host}:{port}" for host, port in addresses)
    if len(addresses) != 1:
        raise StackError(f"--brokers {brokers}, but KAFKA_BOOTSTRAP names {len(addresses)} brokers "
                         f"({settings.kafka_bootstrap}): name {brokers}, or one to count on from")
    host, port = addresses[0]
    return ",".join(f"{host}:{port + 2 * n}" for n in range(brokers))


def recorded_addresses(run_dir: Path) -> list[str] | None:
    """The addresses this run dir's Kafka storage was formatted for, None before its first start."""
    nodes = run_dir / "kafka" / "nodes"
    if nodes.exists():
        return [line.strip() for line in nodes.read_text().splitlines() if line.strip()]
    return None


def kafka_nodes(settings) -> list["Kafka"]:
    """The nodes of the local Kafka: one per KAFKA_BOOTSTRAP address; with a single address that is
    node 1 of a cluster this run dir holds, the whole cluster (so `down` and `status` see every node)."""
    addresses = [f"{'127.0.0.1' if host == 'localhost' else host}:{port}" for host, port in settings.kafka_addresses]
    recorded = recorded_addresses(Path(settings.run_dir).absolute())
    if len(addresses) == 1 and recorded and len(recorded) > 1 and recorded[0] == addresses[0]:
        addresses = recorded
    return [Kafka(settings, node, addresses) for node in range(1, len(addresses) + 1)]


class Kafka(Service):
    start_timeout = 90.0
    stop_timeout = 40.0

    def __init__(self, settings, node: int = 1, addresses: list[str] | None = None):
        super().__init__(settings)
        self.node = node
        self.addresses = addresses or [f"{host}:{port}" for host, port in settings.kafka_addresses[:1]]
        self.name = node_name(node)

    @property
    def properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def endpoint(self) -> str:
        host, port = self.host_port()
        return f"{host}:{port}"

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.addresses[self.node - 1].rpartition(":")
        return host, int(port)

    def ports(self) -> list[int]:
        port = self.host_port()[1]
        return [port, port + 1]

    def marker(self) -> str:
        return str(self.properties)

    def cluster_id(self) -> str:
        path = self.run_dir / "kafka" / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        while True:  # Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, no padding
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                break
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cid + "\n")
        return cid

    def server_properties(self) -> str:
        host, port = self.host_port()
        host = "127.0.0.1" if host == "localhost" else host
        controller = port + 1
        partitions = max(1, int(self.settings.topic_partitions))
        voters = ",".join(f"{n}@{address.rpartition(':')[0]}:{int(address.rpartition(':')[2]) + 1}"
                          for n, address in enumerate(self.addresses, start=1))
        copies = min(3, len(self.addresses))
        in_sync = 2 if copies >= 3 else 1
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(partitions),
            "default.replication.factor": str(copies),
            "min.insync.replicas": str(in_sync),
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": str(copies),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(copies),
            "transaction.state.log.min.isr": str(in_sync),
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 1024 * 1024),
            "message.max.bytes": str(8 * 1024 * 1024),
            "replica.fetch.max.bytes": str(8 * 1024 * 1024),
        }
        if self.settings.profile == "secure":
            lines.update(self.secure_properties(host, port, controller))
        shape = "one broker+controller" if len(self.addresses) == 1 else (
            f"node {self.node} of {len(self.addresses)}, each a broker+controller")
        head = f"# generated by ops/stack/kafka.py on every `algo stack up` (KRaft, {shape}); edits are overwritten\n"
        return head + "".join(f"{key}={value}\n" for key, value in lines.items())

    def secure_properties(self, host: str, port: int, controller: int) -> dict[str, str]:
        """SASL/SCRAM-SHA-512 over TLS for clients and between brokers; SASL/PLAIN on the controller
        listener (SCRAM cannot be used controller-to-controller); every principal but admin gets only
        what its ACLs grant (ops/stack/acls.py)."""
        from ops.stack.secure import CA_FILE, SERVER_FILE

        folder = self.settings.secrets_folder
        admin = self.settings.password("admin")
        return {
            "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller}",
            "advertised.listeners": f"SASL_SSL://{host}:{port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                'org.apache.kafka.common.security.plain.PlainLoginModule required '
                f'username="admin" password="{admin}" user_admin="{admin}";',
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(folder / SERVER_FILE),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(folder / CA_FILE),
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": "User:admin",
            "auto.create.topics.enable": "false",
        }

    def check_profile(self) -> None:
        """Refuses to start storage formatted for the other profile (its users and listeners differ)."""
        path = self.run_dir / "kafka" / "profile"
        if path.exists() and path.read_text().strip() != self.settings.profile:
            raise StackError(f"{self.name}: {self.run_dir} holds a Kafka of the {path.read_text().strip()} profile, "
                             f"not {self.settings.profile}: set ALGO_PROFILE (or ALGO_RUN_DIR for another stack)")
        if not path.exists():
            formatted = (self.run_dir / "kafka" / "data" / "meta.properties").exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(("local" if formatted else self.settings.profile) + "\n")
            if formatted and self.settings.profile != "local":
                self.check_profile()

    def check_addresses(self) -> None:
        """Refuses a set of nodes other than the one this run dir's storage was formatted for."""
        recorded = recorded_addresses(self.run_dir)
        if recorded is None and (self.run_dir / "kafka" / "data" / "meta.properties").exists():
            recorded = self.addresses[:1]  # formatted before nodes were recorded: a single broker
        if recorded is not None and recorded != self.addresses:
            raise StackError(
                f"{self.name}: {self.run_dir} holds a Kafka of {len(recorded)} node(s) at {','.join(recorded)}, "
                f"not {','.join(self.addresses)}: set KAFKA_BOOTSTRAP to those, or `algo stack down` and remove "
                f"{self.run_dir}/kafka* to start another cluster (its data is lost)")
        if recorded is None:
            nodes = self.run_dir / "kafka" / "nodes"
            nodes.parent.mkdir(parents=True, exist_ok=True)
            nodes.write_text("".join(f"{address}\n" for address in self.addresses))

    def _classpath(self) -> str:
        return str(kafka_libs_dir(self.settings)) + "/*"

    def _jvm(self) -> list[str]:
        return [fetch.java(self.settings, KAFKA_JAVA), *KAFKA_HEAP, *JVM_COMMON, f"-Dlog4j.configuration=file:{KAFKA_LOG4J}",
                "-cp", self._classpath()]

    def prepare(self, progress: Progress) -> None:
        require_loopback(self.host_port()[0], "KAFKA_BOOTSTRAP")
        self.check_addresses()
        fetch_kafka(self.settings, progress)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.check_profile()
        cid = self.cluster_id()
        fd = os.open(self.properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # passwords inside (secure)
        with os.fdopen(fd, "w") as out:
            out.write(self.server_properties())
        if not (self.data_dir / "meta.properties").exists():
            progress(f"{self.name}: formatting KRaft storage {self.data_dir} (cluster id {cid}, first run only)")
            extra = []
            if self.settings.profile == "secure":  # the SCRAM users, in an argument file: never on a command line
                from streams.settings import PRINCIPALS

                argfile = self.dir / "format.args"
                fd = os.open(argfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    for principal in PRINCIPALS:
                        out.write(f"--add-scram\nSCRAM-SHA-512=[name={principal},"
                                  f"password={self.settings.password(principal)}]\n")
                extra = [f"@{argfile}"]
            try:
                run([*self._jvm(), "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(self.properties),
                     "--ignore-formatted", *extra], f"{self.name}: storage format", self.log, timeout=120)
            finally:
                if extra:
                    (self.dir / "format.args").unlink(missing_ok=True)

    def command(self) -> list[str]:
        jvm = self._jvm()
        return [jvm[0], *self.cds_flags(jvm[0], self._classpath(), *jvm[1:]), *jvm[1:], "kafka.Kafka",
                str(self.properties)]

    def after_start(self, progress: Progress) -> None:
        if self.settings.profile == "secure" and self.node == 1:
            from ops.stack.acls import grant

            count = grant(self.settings)
            progress(f"{self.name}: {count} ACL bindings in place for app id {self.settings.app_id}")

    def probe(self, timeout: float = 2.0) -> tuple[bool, str]:
        host, port = self.host_port()
        if not port_open(host, port):
            return False, f"nothing listens on {host}:{port}"
        from confluent_kafka.admin import AdminClient

        quiet = logging.getLogger("ops.stack.kafka.probe")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
        try:
            config = dataclasses.replace(self.settings, kafka_bootstrap=f"{host}:{port}", principal="admin").kafka_config(
                {"socket.timeout.ms": int(timeout * 1000), "logger": quiet})
            config.pop("client.id", None)
            admin = AdminClient(config)
            metadata = admin.list_topics(timeout=timeout)
        except Exception as error:  # noqa: BLE001
            return False, f"metadata: {error}"
        if not metadata.brokers:
            return False, "metadata has no brokers yet"
        brokers = len(metadata.brokers)
        if brokers < len(self.addresses) // 2 + 1:
            return False, f"{brokers} of {len(self.addresses)} brokers registered (no quorum yet)"
        return True, (f"Kafka {KAFKA_VERSION} (KRaft), {brokers} broker{'s' if brokers > 1 else ''}, "
                      f"{len(metadata.topics)} topics")
