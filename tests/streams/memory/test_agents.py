"""The Memory agent: one tiering round against a private Redis (unit, with an in-memory store), and the
real `algo worker memory` bringing a capped private Redis under its low watermark by demoting, every
value still readable, its decisions on agent.logs and its metrics served."""
from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid

import numpy as np
import psycopg
import pytest
import redis
import redis.asyncio as aioredis

from streams.memory.features import FEATURE_NAMES
from streams.memory.keys import cache_key
from streams.memory.model import N_INPUTS, EvictionPolicy
from streams.memory.tierer import RoundReport, Tierer
from streams.memory.tiering import DEMOTE
from streams.settings import Settings
from tests.kafka_tools import Worker, first_matching, wait_for

MAXMEMORY = 4 * 1024 * 1024
VALUE_BYTES = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis():
    """A redis-server of our own (noeviction, capped): the shared one's config is never touched."""
    port = free_port()
    process = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                                "--appendonly", "no", "--maxmemory", str(MAXMEMORY), "--maxmemory-policy",
                                "noeviction", "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), timeout=20, every=0.1, what="the private redis-server")
    yield f"redis://127.0.0.1:{port}/0", client
    client.close()
    process.terminate()
    process.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.exceptions.ConnectionError:
        return False


def age_policy() -> EvictionPolicy:
    """A one-layer policy that scores by log age alone (LRU-like): a stand-in the tests understand."""
    w0 = np.zeros((N_INPUTS, 1), dtype=np.float32)
    w0[FEATURE_NAMES.index("log_age"), 0] = 1.0
    return EvictionPolicy({"input_mean": np.zeros(N_INPUTS, np.float32), "input_scale": np.ones(N_INPUTS, np.float32),
                           "w0": w0, "b0": np.zeros(1, np.float32)}, {"algorithm": "test-age"})


class DictStore:
    """demote/drop over a Redis client and a dict as the cold tier (what the Tierer needs of a store)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client, self.cold = client, {}

    async def demote(self, key: str) -> bool:
        value = await self.client.get(key)
        if value is None:
            return False
        self.cold[key] = value
        return bool(await self.client.unlink(key))

    async def drop(self, key: str) -> bool:
        self.cold.pop(key, None)
        return bool(await self.client.unlink(key))


async def test_a_round_demotes_the_oldest_keys_until_under_the_low_watermark(private_redis):
    url, _ = private_redis
    settings = Settings()
    client = aioredis.from_url(url)
    store = DictStore(client)
    tierer = Tierer(settings, store, client, age_policy(), unseen_samples=0)
    try:
        assert await tierer.round() is None  # empty: under the high watermark, nothing to do
        used, maximum = await tierer.memory()
        assert maximum == MAXMEMORY
        written = []
        while used <= 0.9 * maximum:
            key = cache_key("backtest", "UNIT", f"r{len(written)}")
            await client.set(key, b"x" * VALUE_BYTES)
            tierer.observe({"key": key, "op": "SET", "tier": "HOT", "size_bytes": VALUE_BYTES, "kind": "backtest",
                            "symbol": "UNIT"})
            written.append(key)
            used, _ = await tierer.memory()
        for key in written[:5]:  # the first five are read again: the youngest by access, kept hot
            tierer.observe({"key": key, "op": "GET", "tier": "HOT", "size_bytes": VALUE_BYTES, "kind": "backtest",
                            "symbol": "UNIT"})
        report = await tierer.round()
        assert isinstance(report, RoundReport)
        assert report.used_before > 0.85 * maximum >= 0.75 * maximum >= report.used_after
        assert all(decision.action == DEMOTE and done for decision, done in report.decisions)
        demoted = [decision.key for decision, _ in report.decisions]
        assert set(demoted) == set(store.cold) and not set(demoted) & set(written[:5])
        # an age policy over LRU-tail proposals demotes in write order
        assert demoted[:3] == written[5:8]
        for key in written:
            assert (await client.get(key) or store.cold.get(key)) == b"x" * VALUE_BYTES
        record = report.log_record(tierer.stats())
        assert record["agent"] == "memory" and record["context"]["kind"] == "tiering"
        assert record["context"]["demoted"] == str(len(demoted)) and tierer.totals["demoted"] == len(demoted)
        assert await tierer.round() is None
    finally:
        await client.aclose()


@pytest.mark.integration
def test_the_memory_worker_keeps_redis_under_its_watermarks(provisioned, private_redis, tmp_path):
    from streams.memory.store import AccessLog, TieredStore

    url, client = private_redis
    policy_dir = age_policy().save(tmp_path / "policy")
    metrics_port = free_port()
    worker = Worker("memory", tmp_path / "memory.log", REDIS_URL=url, MEMORY_MODEL_DIR=str(policy_dir),
                    MEMORY_CHECK_INTERVAL_S="0.2", MEMORY_STATS_INTERVAL_S="1", MEMORY_METRICS_PORT=str(metrics_port))
    symbol = f"MA{uuid.uuid4().hex[:6].upper()}"
    settings = dataclasses.replace(provisioned, redis_url=url)
    keys = [cache_key("backtest", symbol, f"r{i}") for i in range(260)]  # 5.2 MB of values for a 4 MB Redis
    newest = cache_key("backtest", symbol, "newest")
    values = {key: uuid.uuid4().bytes * (VALUE_BYTES // 16) for key in keys}
    high = 0.85 * MAXMEMORY

    async def write_and_read() -> dict[str, str]:
        access_log = AccessLog(settings, "test-memory")
        async with TieredStore(settings, agent="test-memory", access_log=access_log) as store:
            for key in keys:
                await store.put(key, values[key])
                await asyncio.sleep(0.005)  # a workload, not a burst: the agent's rounds run between writes
            await access_log.stop()  # the accesses are on cache.access before the agent is judged
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and int(client.info("memory")["used_memory"]) > 0.75 * MAXMEMORY:
                await asyncio.sleep(0.2)
            # once the agent has made room, a new write lands hot (the last of the keys above may have gone
            # cold: a write that Redis refuses at its cap (OOM) goes to Postgres before a round runs)
            await store.put(newest, values[keys[-1]])
            newest_hot = bool(client.exists(newest))
            # where each key is, all at once: the reads below promote cold keys, and the agent makes room again
            tiers = {key: "HOT" if client.exists(key) else "COLD" for key in keys}
            tiers[newest] = "HOT" if newest_hot else "COLD"
            for key in keys:
                assert await store.get(key) == values[key], key  # nothing lost, whichever tier holds it
            return tiers

    try:
        tiers = asyncio.run(write_and_read())
        log = worker.log()
        assert "Traceback" not in log, log[-3000:]
        demoted = [key for key, tier in tiers.items() if tier == "COLD"]
        assert len(demoted) >= 40 and tiers[newest] == "HOT", (len(demoted), log[-2000:])
        with psycopg.connect(provisioned.database_url) as conn:
            cold = {row[0] for row in conn.execute("SELECT key FROM cold_store WHERE key = ANY(%s)", (keys,))}
        assert set(demoted) <= cold
        record = first_matching(provisioned, "agent.logs", lambda r: r["agent"] == "memory"
                                and r["context"].get("kind") == "tiering" and symbol in r["context"].get("keys", ""))
        context = record["context"]
        assert int(context["used_before"]) > high and int(context["demoted"]) > 0
        assert int(context["used_after"]) <= 0.75 * MAXMEMORY or int(context["used_after"]) < int(context["used_before"])
        assert context["policy_version"] == age_policy().version and "demote" in context["actions"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        demotions = next(float(line.split()[-1]) for line in metrics.splitlines()
                         if line.startswith("algo_memory_demotions_total"))
        # cold keys: the agent's demotions and any write Redis refused (OOM) before a round ran; the reads
        # after re-admit cold values, so later rounds may demote again
        assert demotions >= 40 and "algo_memory_redis_max_bytes 4.194304e+06" in metrics
        assert 'algo_memory_accesses_total{op="SET",tier="HOT"}' in metrics
    finally:
        worker.stop()
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM cold_store WHERE key = ANY(%s)", (keys + [newest],))
