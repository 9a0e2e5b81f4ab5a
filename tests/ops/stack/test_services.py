"""ops/stack.py: generated configuration (no services), and the real stack on non-default ports."""
from __future__ import annotations

import json
import os
import random
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.stack import services as stack
from ops.stack.cli import stack as stack_group
from streams.errors import StackError
from streams.settings import Settings


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not stack._listening_inodes(port)


def _free_ports() -> dict[str, int]:
    """Kafka needs port and port+1 (controller); nothing else is fixed. Avoids the defaults."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 40000, 10)
        ports = {"kafka": base, "registry": base + 2, "postgres": base + 3, "redis": base + 4}
        if all(_free(p) for p in (base, base + 1, base + 2, base + 3, base + 4)):
            return ports
    raise RuntimeError("no free ports")


def _settings(run_dir: Path, ports: dict[str, int], cache_dir: Path | None = None) -> Settings:
    env = {
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        "SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}/apis/ccompat/v7",
        "DATABASE_URL": f"postgresql://algo:algo@127.0.0.1:{ports['postgres']}/algo",
        "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "ALGO_RUN_DIR": str(run_dir),
    }
    if cache_dir is not None:
        env["ALGO_CACHE_DIR"] = str(cache_dir)
    else:  # share the machine's cache of jars (fetching them is measured elsewhere, not per test)
        env["ALGO_CACHE_DIR"] = str(Settings().cache_dir)
    return Settings.from_env(env)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return _settings(tmp_path / "run", _free_ports(), cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------
# configuration, without services


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_server_properties_follow_settings(settings: Settings) -> None:
    kafka = stack.Kafka(settings)
    port = settings.kafka_host_port[1]
    props = _properties(kafka.server_properties())
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
    assert kafka.ports() == [port, port + 1]
    assert kafka.endpoint() == f"127.0.0.1:{port}"


def test_kafka_command_and_cache_key(settings: Settings) -> None:
    kafka = stack.Kafka(settings)
    libs = stack.kafka_libs_dir(settings)
    assert libs.parent.parent == Path(settings.cache_dir)
    assert libs.parent.name.startswith(f"kafka-{stack.KAFKA_VERSION}-") and libs.name == "libs"
    cmd = kafka.command()
    assert cmd[-2:] == ["kafka.Kafka", str(kafka.properties)]
    assert "-Xmx512m" in cmd
    assert f"-Dlog4j.configuration=file:{stack.KAFKA_LOG4J}" in cmd
    assert cmd[cmd.index("-cp") + 1] == f"{libs}/*"
    assert stack.KAFKA_LOG4J.exists() and stack.KAFKA_POM.exists()
    assert kafka.marker() in " ".join(cmd)


def test_cluster_id_is_kept(settings: Settings) -> None:
    kafka = stack.Kafka(settings)
    first = kafka.cluster_id()
    assert len(first) == 22 and not first.startswith("-")
    assert stack.Kafka(settings).cluster_id() == first


def test_redis_config_follows_settings(settings: Settings) -> None:
    redis = stack.Redis(settings)
    conf = redis.config_text()
    port = settings.redis_host_port[1]
    assert f"port {port}\n" in conf
    assert "bind 127.0.0.1\n" in conf
    assert f"dir {redis.dir}\n" in conf
    assert "appendonly yes\n" in conf
    assert "daemonize no\n" in conf
    assert "{config-file}" in conf  # the process title carries the config path: our pid check uses it
    assert redis.marker() == str(redis.conf)


def test_registry_properties_use_postgres_from_settings(settings: Settings) -> None:
    registry = stack.Registry(settings)
    props = registry.system_properties()
    pg_port = settings.postgres_host_port[1]
    assert props["quarkus.http.port"] == str(settings.registry_host_port[1])
    assert props["quarkus.http.host"] == "127.0.0.1"
    assert props["quarkus.management.port"] == "0"  # not Quarkus' default 9000
    assert props["apicurio.storage.kind"] == "sql"
    assert props["apicurio.storage.sql.kind"] == "postgresql"
    assert props["apicurio.datasource.url"] == f"jdbc:postgresql://127.0.0.1:{pg_port}/registry"
    assert props["apicurio.datasource.username"] == "algo"
    assert props["apicurio.datasource.password"] == "algo"
    for kind in ("group", "artifact", "artifact-version"):
        assert props[f"apicurio.rest.deletion.{kind}.enabled"] == "true"
    assert registry.endpoint() == settings.schema_registry_url


def test_postgres_command_follows_settings(settings: Settings) -> None:
    postgres = stack.Postgres(settings)
    cmd = postgres.command()
    port = settings.postgres_host_port[1]
    assert Path(cmd[0]).name == "postgres"
    assert cmd[1:3] == ["-D", str(postgres.data_dir)]
    assert f"port={port}" in cmd
    assert "listen_addresses=127.0.0.1" in cmd
    assert f"unix_socket_directories={postgres.home}" in cmd
    assert postgres.stop_signal.name == "SIGINT"
    assert postgres.endpoint() == f"postgresql://algo:***@127.0.0.1:{port}/algo"


def test_postgres_home_is_reachable_by_its_user(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    home = stack.pg_home(Settings(run_dir=run_dir))
    if os.geteuid() == 0 and not stack._traversable_by_others(run_dir):
        assert home.parent.parent == stack.SHARED_ROOT and home.name == "postgres"
    else:
        assert home == run_dir.absolute() / "postgres"
    assert stack.pg_home(Settings(run_dir=run_dir)) == home  # stable


@pytest.mark.parametrize("variable, value", [
    ("KAFKA_BOOTSTRAP", "kafka:9092"),
    ("DATABASE_URL", "postgresql://algo:algo@db.example:5432/algo"),
    ("REDIS_URL", "redis://cache.example:6379/0"),
    ("SCHEMA_REGISTRY_URL", "http://registry.example:8081/apis/ccompat/v7"),
])
def test_remote_endpoints_are_refused(tmp_path: Path, variable: str, value: str) -> None:
    settings = Settings.from_env({variable: value, "ALGO_RUN_DIR": str(tmp_path / "run"),
                                  "ALGO_CACHE_DIR": str(tmp_path / "cache")})
    service = {"KAFKA_BOOTSTRAP": stack.Kafka, "DATABASE_URL": stack.Postgres, "REDIS_URL": stack.Redis,
               "SCHEMA_REGISTRY_URL": stack.Registry}[variable](settings)
    with pytest.raises(StackError, match="loopback"):
        service.prepare(lambda message: None)


def test_port_taken_by_a_stranger_is_reported(settings: Settings) -> None:
    port = settings.redis_host_port[1]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        holder = stack.port_holder(port)
        assert holder is not None and f"pid {os.getpid()}" in holder
        with pytest.raises(StackError) as raised:
            stack._ensure(stack.Redis(settings), lambda message: None)
    message = str(raised.value)
    assert f"port {port} is already in use by pid {os.getpid()}" in message
    assert "REDIS_URL" in message
    assert not stack.Redis(settings).pid_file.exists()


def test_status_of_nothing(settings: Settings) -> None:
    parts = stack.status(settings)
    assert [part.name for part in parts] == ["postgres", "redis", "kafka", "registry"]
    assert all(not part.running and not part.healthy and part.pid is None for part in parts)
    assert all(part.detail == "stopped" for part in parts)
    assert not stack.is_up(settings)
    json.dumps([part.as_dict() for part in parts])
    assert stack.down(settings) == parts  # idempotent, nothing to stop


def test_stale_pid_file_is_not_trusted(settings: Settings) -> None:
    redis = stack.Redis(settings)
    redis.dir.mkdir(parents=True)
    redis.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a redis-server with our config
    assert redis.our_pid() is None
    redis.pid_file.write_text("999999999\n")
    assert redis.our_pid() is None


def test_cds_archive_is_made_once_and_kept_only_after_a_clean_exit(settings: Settings) -> None:
    kafka = stack.Kafka(settings)
    kafka.dir.mkdir(parents=True)
    java = shutil.which("java") or "/usr/bin/java"
    first = kafka.cds_flags(java, "cp")
    assert first[0].startswith("-XX:ArchiveClassesAtExit=") and first[0].endswith(".jsa.tmp")
    tmp = Path(first[0].split("=", 1)[1])
    tmp.write_bytes(b"archive")
    kafka.settle_cds(clean_exit=True)
    assert kafka.cds_flags(java, "cp")[0] == f"-XX:SharedArchiveFile={tmp.with_suffix('')}"
    assert kafka.cds_flags(java, "other classpath")[0].startswith("-XX:ArchiveClassesAtExit=")
    assert not tmp.with_suffix("").exists()  # an archive for another classpath is dropped
    Path(kafka.cds_flags(java, "cp")[0].split("=", 1)[1]).write_bytes(b"half")
    kafka.settle_cds(clean_exit=False)
    assert not list(kafka.dir.glob("*.jsa*"))


def test_failure_message_has_log_tail_and_hint(settings: Settings) -> None:
    kafka = stack.Kafka(settings)
    kafka.dir.mkdir(parents=True)
    kafka.log.write_text("\n".join(f"line {i}" for i in range(100)) + "\nAddress already in use\n")
    message = str(kafka.failure("exited during start"))
    assert message.startswith("kafka: exited during start")
    assert "line 99" in message and "line 60" not in message
    assert str(kafka.log) in message


def test_cli_status_json(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "SCHEMA_REGISTRY_URL": settings.schema_registry_url,
                       "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                       "ALGO_RUN_DIR": str(settings.run_dir), "ALGO_CACHE_DIR": str(settings.cache_dir)}.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(stack_group, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["healthy"] is False
    assert [part["name"] for part in report["parts"]] == ["postgres", "redis", "kafka", "registry"]
    assert report["parts"][2]["endpoint"] == settings.kafka_bootstrap


# ---------------------------------------------------------------------------------------------
# the real stack, on non-default ports in a temporary run dir


@pytest.fixture(scope="module")
def isolated_stack(tmp_path_factory: pytest.TempPathFactory):
    settings = _settings(tmp_path_factory.mktemp("stack") / "run", _free_ports())
    messages: list[str] = []
    try:
        stack.up(settings, progress=messages.append)
    except BaseException:
        stack.down(settings)
        raise
    try:
        yield settings
    finally:
        stack.down(settings)
        home = stack.pg_home(settings)
        if stack.SHARED_ROOT in home.parents:  # relocated for the non-root Postgres user: ours to clean
            shutil.rmtree(home.parent, ignore_errors=True)


def _registry(settings: Settings, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    request = urllib.request.Request(settings.schema_registry_url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _record(*fields: dict) -> dict:
    return {"schema": json.dumps({"type": "record", "name": "Probe", "namespace": "algo.test",
                                  "fields": [{"name": "a", "type": "string"}, *fields]})}


@pytest.mark.integration
def test_every_part_is_healthy(isolated_stack: Settings) -> None:
    parts = {part.name: part for part in stack.status(isolated_stack)}
    assert set(parts) == {"postgres", "redis", "kafka", "registry"}
    for part in parts.values():
        assert part.running and part.healthy and part.pid, part
        assert part.log.exists()
        assert str(isolated_stack.run_dir) in str(part.log)
    assert "pgvector" in parts["postgres"].detail
    assert stack.is_up(isolated_stack)


@pytest.mark.integration
def test_up_is_idempotent(isolated_stack: Settings) -> None:
    before = {part.name: part.pid for part in stack.status(isolated_stack)}
    started = time.monotonic()
    after = {part.name: part.pid for part in stack.up(isolated_stack, progress=lambda message: None)}
    assert after == before
    assert time.monotonic() - started < 10

    redis = stack.Redis(isolated_stack)  # a lost pid file: the running server is recognised, not refused
    redis.pid_file.unlink()
    assert {part.name: part.pid for part in stack.up(isolated_stack, progress=lambda message: None)} == before
    assert redis.pid_file.read_text().strip() == str(before["redis"])


@pytest.mark.integration
def test_parts_do_their_jobs(isolated_stack: Settings) -> None:
    import psycopg
    import redis
    from confluent_kafka import Consumer, Producer

    with psycopg.connect(isolated_stack.database_url) as conn:
        distance = conn.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector").fetchone()[0]
        assert distance == pytest.approx(1.0)
        databases = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert {"algo", "registry"} <= databases

    client = redis.Redis.from_url(isolated_stack.redis_url)
    client.set("stack-test", "ok")
    assert client.get("stack-test") == b"ok"
    client.close()

    topic = f"stack-test-{random.randrange(10**9)}"
    producer = Producer(isolated_stack.kafka_config())
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(isolated_stack.kafka_config({"group.id": f"g-{topic}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        deadline, value = time.monotonic() + 30, None
        while value is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                value = message.value()
    finally:
        consumer.close()
    assert value == b"hello"


@pytest.mark.integration
def test_registry_enforces_backward_compatibility_and_deletes(isolated_stack: Settings) -> None:
    subject = f"compat-{random.randrange(10**9)}-value"
    assert _registry(isolated_stack, "PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})[0] == 200
    code, body = _registry(isolated_stack, "POST", f"/subjects/{subject}/versions", _record())
    assert code == 200 and isinstance(body["id"], int)
    # a new field without a default cannot read old data: refused under BACKWARD
    code, body = _registry(isolated_stack, "POST", f"/subjects/{subject}/versions", _record({"name": "b", "type": "int"}))
    assert code == 409, body
    code, body = _registry(isolated_stack, "POST", f"/subjects/{subject}/versions",
                           _record({"name": "b", "type": "int", "default": 0}))
    assert code == 200, body
    assert _registry(isolated_stack, "GET", f"/subjects/{subject}/versions")[1] == [1, 2]
    assert _registry(isolated_stack, "DELETE", f"/subjects/{subject}")[0] == 200
    assert _registry(isolated_stack, "DELETE", f"/subjects/{subject}?permanent=true")[0] == 200
    assert subject not in _registry(isolated_stack, "GET", "/subjects")[1]

    # the global level is accepted too (and put back)
    previous = _registry(isolated_stack, "GET", "/config")[1]["compatibilityLevel"]
    assert _registry(isolated_stack, "PUT", "/config", {"compatibility": "BACKWARD"}) == (
        200, {"compatibility": "BACKWARD", "normalize": False})
    assert _registry(isolated_stack, "GET", "/config")[1]["compatibilityLevel"] == "BACKWARD"
    _registry(isolated_stack, "PUT", "/config", {"compatibility": previous})


@pytest.mark.integration
def test_down_is_truthful_and_schemas_survive_a_restart(isolated_stack: Settings) -> None:
    subject = f"persist-{random.randrange(10**9)}-value"
    code, body = _registry(isolated_stack, "POST", f"/subjects/{subject}/versions", _record())
    assert code == 200
    schema_id = body["id"]

    parts = stack.down(isolated_stack)
    assert all(not part.running and not part.healthy and part.pid is None for part in parts), parts
    assert not stack.is_up(isolated_stack)
    assert stack.down(isolated_stack) == parts  # idempotent
    for service in stack._services(isolated_stack).values():
        assert not service.pid_file.exists()
        for port in service.ports():
            assert stack.port_holder(port) is None, (service.name, port)

    parts = stack.up(isolated_stack, progress=lambda message: None)
    assert all(part.running and part.healthy for part in parts), parts
    assert subject in _registry(isolated_stack, "GET", "/subjects")[1]
    code, body = _registry(isolated_stack, "GET", f"/subjects/{subject}/versions/1")
    assert code == 200 and body["id"] == schema_id
