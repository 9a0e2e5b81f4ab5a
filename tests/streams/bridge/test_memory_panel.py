"""GET /v1/memory: the dashboard's memory panel (Redis used/max, the Memory agent's counters and recent
rounds) with a fake store, and its query on the real Postgres agent_logs."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from streams.bridge.memory_panel import MEMORY_LOGS_SQL, memory_panel, redis_usage
from streams.bridge.store import Store
from tests.streams.bridge.fakes import FakeStore
from tests.streams.bridge.test_app import AUTH, bridge_client

ROUND = {"kind": "tiering", "keys": json.dumps(["bars:AAPL:1d", "backtest:IBM:r1"]),
         "actions": json.dumps(["demote", "drop"]), "scores": json.dumps([4.5, None]), "demoted": "1", "dropped": "1",
         "used_before": "900", "used_after": "700", "maxmemory": "1000", "policy_version": "memory-abc",
         "hit_ratio": "0.8125"}
STATS = {"kind": "stats", "hit_ratio": "0.75", "demotions_total": "12", "drops_total": "3", "used": "650",
         "maxmemory": "1000", "policy_version": "memory-abc"}


class MemoryLogsStore(FakeStore):
    def __init__(self, stats: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stats = stats

    async def query(self, sql, params=None):
        self._check("query", params["kind"], params["limit"])
        if params["kind"] == "stats":
            return [{"ts": "2026-01-01T00:00:10+00:00", "message": "m", "context": STATS}] if self.stats else []
        return [{"ts": "2026-01-01T00:00:05+00:00", "message": "tiering: 1 demoted, 1 dropped", "context": ROUND}]


async def test_memory_panel_reads_counters_rounds_and_redis():
    store = MemoryLogsStore()
    async with bridge_client(store=store) as client:
        response = await client.get("/v1/memory", params={"limit": "5"}, headers=AUTH)
        assert response.status == 200
        body = await response.json()
    assert ("query", "tiering", 5) in store.calls
    assert body["agent"]["hit_ratio"] == 0.75 and body["agent"]["demotions_total"] == 12
    [decision] = body["decisions"]
    assert decision["keys"] == ["bars:AAPL:1d", "backtest:IBM:r1"] and decision["actions"] == ["demote", "drop"]
    assert decision["scores"] == [4.5, None] and decision["used_before"] == 900 and decision["used_after"] == 700
    redis = body["redis"]  # the default REDIS_URL: the numbers when it answers, else the reason
    assert (isinstance(redis["used_bytes"], int) and redis["max_bytes"] > 0) or "Redis is unavailable" in redis["error"]


async def test_memory_panel_without_stats_uses_the_newest_round_and_validates_limit():
    async with bridge_client(store=MemoryLogsStore(stats=False)) as client:
        body = await (await client.get("/v1/memory", headers=AUTH)).json()
        assert body["agent"]["hit_ratio"] == 0.8125 and "keys" not in body["agent"]
        response = await client.get("/v1/memory", params={"limit": "101"}, headers=AUTH)
        assert response.status == 400 and (await response.json())["field"] == "limit"
        assert (await client.get("/v1/memory")).status == 401
    async with bridge_client(store=MemoryLogsStore(down=True)) as client:
        assert (await client.get("/v1/memory", headers=AUTH)).status == 503


async def test_redis_down_is_reported_not_raised():
    usage = await redis_usage("redis://127.0.0.1:1/0", 1000)
    assert usage["used_bytes"] is None and "Redis is unavailable" in usage["error"]


@pytest.mark.integration
async def test_memory_panel_query_on_postgres(provisioned):
    run = uuid.uuid4().hex[:8]
    future = datetime.now(timezone.utc) + timedelta(days=3650)  # newest of all, whatever else is there
    rows = [(f"test-{run}-stats", future, "stats", STATS), (f"test-{run}-round", future - timedelta(seconds=1),
                                                             "tiering", ROUND)]
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        for log_id, ts, _, context in rows:
            conn.execute("INSERT INTO agent_logs (log_id, agent, ts, level, message, context) VALUES "
                         "(%s, 'memory', %s, 'INFO', 'test', %s)", (log_id, ts, json.dumps(context)))
    store = Store(provisioned)
    await store.open()
    try:
        panel = await memory_panel(store, provisioned, 3)
        assert panel["agent"]["demotions_total"] == 12 and panel["agent"]["used"] == 650
        assert panel["decisions"][0]["keys"] == ["bars:AAPL:1d", "backtest:IBM:r1"]
        assert panel["redis"]["used_bytes"] > 0 and panel["redis"]["error"] is None
        assert len(await store.query(MEMORY_LOGS_SQL, {"agent": "memory", "kind": "tiering", "limit": 3})) <= 3
    finally:
        await store.close()
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM agent_logs WHERE log_id LIKE %s", (f"test-{run}-%",))


@pytest.mark.integration
def test_the_dashboard_shows_the_memory_panel(provisioned, tmp_path):
    """The panel in a real browser (Debian's headless Chromium through Playwright): hit ratio, evictions,
    Redis used vs max and the agent's latest round, from agent_logs rows newer than any other."""
    import shutil

    from tests.streams.bridge.helpers import BridgeProcess
    from tests.streams.bridge.test_dashboard_browser import CHROMIUM, CHROMIUM_FLAGS

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `bash ops/bootstrap.sh` (it installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    run = uuid.uuid4().hex[:8]
    future = datetime.now(timezone.utc) + timedelta(days=3650)
    key = f"backtest:UI{run.upper()}:abc"
    tiering = {**ROUND, "keys": json.dumps([key]), "actions": json.dumps(["demote"]), "scores": json.dumps([3.25])}
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        for log_id, ts, context in ((f"test-{run}-stats", future, STATS),
                                    (f"test-{run}-round", future - timedelta(seconds=1), tiering)):
            conn.execute("INSERT INTO agent_logs (log_id, agent, ts, level, message, context) VALUES "
                         "(%s, 'memory', %s, 'INFO', 'tiering: 1 demoted, 0 dropped', %s)",
                         (log_id, ts, json.dumps(context)))
    errors: list[str] = []
    try:
        with BridgeProcess(tmp_path / "bridge.log") as bridge, sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = context.new_page()
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{bridge.url}/?token={bridge.token}")
                expect(page.locator("#memory-hit-ratio")).to_have_text("75%", timeout=30_000)
                expect(page.locator("#memory-demotions")).to_have_text("12")
                expect(page.locator("#memory-drops")).to_have_text("3")
                expect(page.locator("#memory-used")).to_contain_text(" / ")  # the shared Redis, as it is
                expect(page.locator("#memory-decisions")).to_contain_text(f"↓ {key} (3.25)")
                expect(page.locator("#memory-policy")).to_have_text("policy memory-abc")
            finally:
                context.close()
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM agent_logs WHERE log_id LIKE %s", (f"test-{run}-%",))
    assert errors == []
