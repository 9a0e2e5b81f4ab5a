"""ops/stack/redis.py: the generated configuration (no service started)."""
from __future__ import annotations

from ops.stack.redis import Redis
from streams.settings import Settings


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
