"""ops/stack/services.py: the stack as a whole, with nothing running, and the real stack on
non-default ports in a temporary run dir (a database password of its own, kept off the command lines)."""
from __future__ import annotations

import json
import random
import secrets
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from ops.stack import services as stack
from ops.stack.registry import PASSWORD_VARIABLE
from streams.errors import StackError
from streams.settings import Settings
from tests.ops.stack.helpers import free_ports, stack_settings


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


def test_status_of_nothing(settings: Settings) -> None:
    parts = stack.status(settings)
    assert [part.name for part in parts] == ["postgres", "redis", "kafka", "registry"]
    assert all(not part.running and not part.healthy and part.pid is None for part in parts)
    assert all(part.detail == "stopped" for part in parts)
    assert not stack.is_up(settings)
    json.dumps([part.as_dict() for part in parts])
    assert stack.down(settings) == parts  # idempotent, nothing to stop


# ---------------------------------------------------------------------------------------------
# the real stack, on non-default ports in a temporary run dir


@pytest.fixture(scope="module")
def isolated_stack(tmp_path_factory: pytest.TempPathFactory):
    settings = stack_settings(tmp_path_factory.mktemp("stack") / "run", free_ports(),
                              password=f"pw-{secrets.token_hex(8)}")
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
def test_no_password_on_any_command_line(isolated_stack: Settings) -> None:
    password = isolated_stack.postgres_user_password_db[1]
    assert password.startswith("pw-")
    for part in stack.status(isolated_stack):
        assert part.pid is not None
        assert password not in " ".join(psutil.Process(part.pid).cmdline()), part.name
        assert password not in part.log.read_text(errors="replace"), part.name
    registry = psutil.Process(stack.Registry(isolated_stack).our_pid())
    assert registry.environ()[PASSWORD_VARIABLE] == password  # and it reached Postgres with it: it is healthy


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
    for service in stack.services(isolated_stack).values():
        assert not service.pid_file.exists()
        for port in service.ports():
            assert stack.port_holder(port) is None, (service.name, port)

    parts = stack.up(isolated_stack, progress=lambda message: None)
    assert all(part.running and part.healthy for part in parts), parts
    assert subject in _registry(isolated_stack, "GET", "/subjects")[1]
    code, body = _registry(isolated_stack, "GET", f"/subjects/{subject}/versions/1")
    assert code == 200 and body["id"] == schema_id
