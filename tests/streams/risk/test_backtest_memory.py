"""The risk agent reads backtest results through the tiered store (streams.risk.agents
backtest_through_memory): a repeat of the same parameters under a new request id is a HOT hit that
skips the C++ run and answers with the new id. In-process, against a private redis-server and the
shared Postgres (the bars: market_data, else the bundled dataset)."""
from __future__ import annotations

import dataclasses

import psycopg
import pytest

from streams.memory.store import TieredStore
from tests import fixtures
from tests.streams.memory.redis_server import private_redis

pytestmark = pytest.mark.integration


async def test_a_repeated_backtest_is_a_hot_hit_that_skips_the_engine(provisioned, monkeypatch) -> None:
    from streams.risk import agents

    runs: list[str] = []
    engine = agents.backtest_result

    def counted(request, bars):
        runs.append(request["request_id"])
        return engine(request, bars)

    monkeypatch.setattr(agents, "backtest_result", counted)
    first = fixtures.backtest_request(params={"fast": 13.0, "slow": 77.0})
    repeat = fixtures.backtest_request(params={"fast": 13.0, "slow": 77.0})
    other = fixtures.backtest_request(params={"fast": 14.0, "slow": 77.0})
    key = agents.backtest_key(first)
    assert key == agents.backtest_key(repeat) != agents.backtest_key(other)
    assert key.startswith("backtest:AAPL:") and len(key.rsplit(":", 1)[1]) == 64
    keys_written = [key, agents.backtest_key(other)]
    with private_redis() as server:
        settings = dataclasses.replace(provisioned, redis_url=server.url)
        try:
            async with TieredStore(settings, agent="risk") as store:
                computed = await agents.backtest_through_memory(store, first)
                answered = await agents.backtest_through_memory(store, repeat)
                assert runs == [first["request_id"]]  # the repeat did not run the engine
                assert store.stats()["hits_hot"] == 1 and store.stats()["misses"] == 1
                assert answered["request_id"] == repeat["request_id"]
                assert {**answered, "request_id": first["request_id"]} == computed  # same stats, ts, bars
                assert computed["error"] is None and computed["stats"]["trades"] > 0
                await agents.backtest_through_memory(store, other)
                assert runs == [first["request_id"], other["request_id"]]
                # a failed run is answered but not cached: the next one tries again
                missing = [fixtures.backtest_request(symbol="NOPE") for _ in range(2)]
                keys_written.append(agents.backtest_key(missing[0]))
                for request in missing:
                    result = await agents.backtest_through_memory(store, request)
                    assert result["error"] == "no bars for NOPE" and result["request_id"] == request["request_id"]
                assert runs[2:] == [r["request_id"] for r in missing]
                assert server.client().exists(keys_written[-1]) == 0
        finally:
            with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
                conn.execute("DELETE FROM cold_store WHERE key = ANY(%s)", (keys_written,))


def test_the_encoded_cached_result_fits_the_schema(provisioned) -> None:
    """A result that went through JSON (the cache) still encodes as a BacktestResult."""
    import json
    from datetime import datetime

    from streams.bus.codecs import CodecRegistry
    from streams.memory.store import dumps
    from streams.risk.rules import backtest_result
    from streams.market.datasets import load_bars

    request = fixtures.backtest_request()
    result = backtest_result(request, load_bars("stocks", "AAPL"))
    cached = json.loads(dumps(result))
    again = {**cached, "ts": datetime.fromisoformat(cached["ts"])}
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("backtest.results")
    assert codec.decode(codec.encode(again))["stats"] == result["stats"]


def test_the_risk_worker_answers_a_repeat_from_redis(provisioned, tmp_path) -> None:
    """End to end: two requests with the same parameters to a risk worker; the second result carries its
    own id and the first run's ts (nothing re-ran), and the result sits in Redis under backtest_key."""
    import random

    import redis

    from streams.bus.codecs import CodecRegistry
    from streams.risk.agents import backtest_key
    from tests.kafka_tools import Worker, first_matching, produce

    params = {"fast": float(random.randint(2, 40)), "slow": float(random.randint(60, 400))}
    requests = [fixtures.backtest_request(params=params) for _ in range(2)]
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("backtest.requests")
    worker = Worker("risk", tmp_path / "risk.log")
    client = redis.Redis.from_url(provisioned.redis_url)
    try:
        results = []
        for request in requests:  # one after the other: the second finds the first's result
            produce(provisioned, "backtest.requests", request["request_id"].encode(), codec.encode(request))
            results.append(first_matching(provisioned, "backtest.results",
                                          lambda r, rid=request["request_id"]: r["request_id"] == rid))
        first, second = results
        assert first["error"] is None and second["request_id"] == requests[1]["request_id"]
        assert (second["ts"], second["elapsed_us"], second["stats"]) == (first["ts"], first["elapsed_us"],
                                                                         first["stats"])
        assert client.exists(backtest_key(requests[0])) == 1
    finally:
        worker.stop()
        client.delete(backtest_key(requests[0]))
        client.close()
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM cold_store WHERE key = %s", (backtest_key(requests[0]),))
