"""ops/stack/redis.py: the generated configuration, and a private redis-server run on it."""
from __future__ import annotations

import dataclasses
import subprocess
import time

import pytest

from ops.stack.redis import Redis
from streams.settings import MemorySettings, Settings


def test_redis_config_follows_settings(settings: Settings) -> None:
    redis = Redis(settings)
    conf = redis.config_text()
    port = settings.redis_host_port[1]
    assert f"port {port}\n" in conf
    assert "bind 127.0.0.1\n" in conf
    assert f"dir {redis.dir}\n" in conf
    assert "appendonly yes\n" in conf
    assert "daemonize no\n" in conf
    assert "{config-file}" in conf  # the process title carries the config path: our pid check uses it
    assert redis.marker() == str(redis.conf)


def test_redis_config_caps_memory_with_noeviction(settings: Settings) -> None:
    capped = dataclasses.replace(settings, memory=MemorySettings(redis_maxmemory="3mb"))
    conf = Redis(capped).config_text()
    assert f"maxmemory {3 * 1024 * 1024}\n" in conf
    assert "maxmemory-policy noeviction\n" in conf


def test_redis_server_runs_the_generated_config_and_refuses_writes_past_the_cap(settings: Settings) -> None:
    """The real redis-server reads the file: maxmemory and noeviction are in force (a write past the
    cap is refused with OOM, nothing is evicted)."""
    import redis

    capped = dataclasses.replace(settings, memory=MemorySettings(redis_maxmemory="2mb"))
    service = Redis(capped)
    service.prepare(lambda _message: None)
    server = subprocess.Popen(service.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(capped.redis_url, socket_timeout=5)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        assert client.config_get("maxmemory") == {"maxmemory": str(2 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        written = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for written in range(1000):  # 1000 x 16 KiB is far past 2 MiB
                client.set(f"k{written}", b"x" * 16384)
        assert written > 0 and client.dbsize() == written  # every accepted key is still there
        assert client.delete("k0") == 1  # deletes still work when full (how the agent frees memory)
    finally:
        client.close()
        server.terminate()
        server.wait(10)
