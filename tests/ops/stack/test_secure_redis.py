"""Integration: the secure profile's Redis (ALGO_PROFILE=secure) on a port of its own: no default
user, one ACL user per principal, the workers without the admin commands."""
from __future__ import annotations

import dataclasses
import stat

import pytest
import redis

from tests.ops.stack.helpers import secure_part

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    with secure_part(tmp_path_factory.mktemp("secure-redis"), "redis") as settings:
        yield settings


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def test_no_password_or_a_wrong_one_is_refused(secure):
    with pytest.raises(redis.AuthenticationError):  # NOAUTH: the default user is off
        client(secure.redis_url).ping()
    host, port = secure.redis_host_port
    with pytest.raises(redis.AuthenticationError):
        client(f"redis://risk:wrong-password@{host}:{port}/0").ping()
    conf = secure.run_dir / "redis" / "redis.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert secure.password("risk") not in conf.read_text()  # only its SHA-256 is there


def test_a_worker_reads_and_writes_keys_but_runs_no_admin_command(secure):
    risk = client(dataclasses.replace(secure, principal="risk").redis_client_url)
    assert risk.ping() and risk.set("algo:test:key", b"v") and risk.get("algo:test:key") == b"v"
    assert "used_memory" in risk.info("memory")  # the memory agent reads it
    for command in (("CONFIG", "SET", "maxmemory", "1"), ("FLUSHALL",), ("ACL", "LIST"), ("SHUTDOWN",)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            risk.execute_command(*command)
    admin = client(dataclasses.replace(secure, principal="admin").redis_client_url)
    assert admin.config_get("maxmemory")  # the demo caps Redis as admin
