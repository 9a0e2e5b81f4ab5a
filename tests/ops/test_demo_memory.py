"""The demo's memory pieces: its reading of the Memory worker's metrics, and its Redis cap (on a private
redis-server: the shared one's config is never touched), restored however the block ends."""
from __future__ import annotations

import dataclasses
import socket

import pytest
from prometheus_client import start_http_server

from ops.demo import DEMO_REDIS_HEADROOM_BYTES, memory_figures, redis_capped
from streams.memory.tierer import MemoryMetrics
from streams.settings import Settings
from tests.streams.memory.redis_server import private_redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_memory_figures_read_the_workers_metrics():
    metrics = MemoryMetrics()
    metrics.accesses.labels("GET", "HOT").inc(30)
    metrics.accesses.labels("GET", "COLD").inc(8)
    metrics.accesses.labels("SET", "HOT").inc(5)
    metrics.hit_ratio.set(0.75)
    metrics.demotions.inc(12)
    metrics.used_bytes.set(900)
    metrics.max_bytes.set(1000)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        figures = memory_figures(port)
    finally:
        server.shutdown()
        thread.join(5)
    assert figures["hit_ratio"] == 0.75 and figures["demotions"] == 12 and figures["drops"] == 0
    assert figures["reads"] == {"HOT": 30, "COLD": 8}
    assert figures["redis_used_bytes"] == 900 and figures["redis_max_bytes"] == 1000
    assert "did not answer" in memory_figures(_free_port())["error"]


def test_the_demo_caps_redis_and_restores_it():
    with private_redis() as server:
        client = server.client()
        client.config_set("maxmemory-policy", "allkeys-lru")
        settings = dataclasses.replace(Settings(), redis_url=server.url)
        with pytest.raises(RuntimeError):
            with redis_capped(settings, lambda _: None) as cap:
                used = int(client.info("memory")["used_memory"])
                assert used < cap <= used + DEMO_REDIS_HEADROOM_BYTES + 100_000
                assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
                raise RuntimeError("the demo stopped half way")
        assert client.config_get("maxmemory")["maxmemory"] == "0"
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        client.close()
