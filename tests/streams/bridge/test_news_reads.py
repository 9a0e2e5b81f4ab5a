"""GET /v1/news and GET /v1/analyst/votes with a fake store (query validation, shapes), and their
queries on the real Postgres (the news a chart shows, the headlines a vote cites)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg
import pytest

from streams.bridge.store import ANALYST_VOTES_SQL, NEWS_SQL
from tests.streams.bridge.fakes import FakeStore
from tests.streams.bridge.test_app import AUTH, bridge_client

UTC = timezone.utc


async def test_news_reads_validate_symbol_times_and_limit():
    store = FakeStore()
    async with bridge_client(store=store) as client:
        response = await client.get("/v1/news", params={"symbol": "IBM", "since": "2013-01-01",
                                                         "until": "2013-03-01T12:00:00+01:00", "limit": "7"}, headers=AUTH)
        assert response.status == 200
        assert (await response.json())["news"][0]["headline"] == "Apple beats"
        assert ("news", "IBM", datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 3, 1, 11, tzinfo=UTC), 7) in store.calls
        await client.get("/v1/news", params={"since": "1356998400000000"}, headers=AUTH)  # epoch microseconds
        assert store.calls[-1] == ("news", None, datetime(2013, 1, 1, tzinfo=UTC), None, 200)
        for params, field in (({"since": "yesterday"}, "since"), ({"until": "2013-13-01"}, "until"),
                              ({"limit": "1001"}, "limit"), ({"symbol": "A B"}, "symbol"), ({"sort": "ts"}, "sort")):
            response = await client.get("/v1/news", params=params, headers=AUTH)
            body = await response.json()
            assert response.status == 400 and body["field"] == field, (params, body)
        assert (await client.get("/v1/news")).status == 401


async def test_analyst_votes_come_with_their_cited_headlines():
    store = FakeStore()
    async with bridge_client(store=store) as client:
        body = await (await client.get("/v1/analyst/votes", params={"symbol": "AAPL", "limit": "3"}, headers=AUTH)).json()
        assert body["votes"][0]["cited"][0]["headline"] == "Apple beats" and ("analyst_votes", "AAPL", 3) in store.calls
        response = await client.get("/v1/analyst/votes", params={"limit": "201"}, headers=AUTH)
        assert response.status == 400 and (await response.json())["field"] == "limit"


@pytest.fixture
def vault_rows(provisioned):
    """Two news items and analyst/technical signals for a unique symbol, removed afterwards."""
    symbol = f"NW{uuid.uuid4().hex[:6].upper()}"
    run = uuid.uuid4().hex[:8]
    ids = {name: f"test-{run}-{name}" for name in ("declared", "resolved", "other", "missing")}
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO news (id, ts, source, headline, symbols) VALUES "
                     "(%s, '2004-01-14', 'wire', 'Declared item', %s), (%s, '2004-01-15', 'feed', 'Resolved item', '{}'), "
                     "(%s, '2004-01-16', 'wire', 'Another company', '{ZZZZ}')",
                     (ids["declared"], [symbol], ids["resolved"], ids["other"]))
        conn.execute("INSERT INTO signals (signal_id, agent, symbol, ts, action, confidence, rationale, model_version, "
                     "input_refs) VALUES (%s, 'analyst', %s, '2004-01-15T12:00:00Z', 'BUY', 0.7, 'rests on two', 'a-1', %s), "
                     "(%s, 'technical', %s, '2004-01-16', 'SELL', 0.5, 'rsi', 't-1', %s)",
                     (f"{run}-a", symbol, [f"news:{ids['resolved']}", f"news:{ids['missing']}", f"news:{ids['declared']}",
                                           "bar:2004-01-15"],
                      f"{run}-t", symbol, [f"news:{ids['other']}"]))
    yield symbol, ids, run
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM signals WHERE signal_id = ANY(%s)", ([f"{run}-a", f"{run}-t"],))
        conn.execute("DELETE FROM news WHERE id = ANY(%s)", (list(ids.values()),))


@pytest.mark.integration
def test_news_for_a_symbol_are_declared_or_cited_by_the_analyst(provisioned, vault_rows):
    symbol, ids, _ = vault_rows
    with psycopg.connect(provisioned.database_url) as conn:
        def news(**params):
            args = {"symbol": symbol, "since": None, "until": None, "limit": 50, **params}
            return conn.execute(NEWS_SQL, args).fetchall()

        rows = news()  # newest first; the technical agent's ref does not make "other" about the symbol
        assert [(r[0], r[3], r[6]) for r in rows] == [(ids["resolved"], "Resolved item", [symbol]),
                                                      (ids["declared"], "Declared item", [symbol])]
        assert [r[0] for r in news(since=datetime(2004, 1, 15, tzinfo=UTC))] == [ids["resolved"]]
        assert [r[0] for r in news(until=datetime(2004, 1, 14, 23, tzinfo=UTC))] == [ids["declared"]]
        assert [r[0] for r in news(limit=1)] == [ids["resolved"]]


@pytest.mark.integration
def test_analyst_votes_cite_headlines_in_input_ref_order(provisioned, vault_rows):
    symbol, ids, run = vault_rows
    with psycopg.connect(provisioned.database_url) as conn:
        rows = conn.execute(ANALYST_VOTES_SQL, {"symbol": symbol, "limit": 10}).fetchall()
    [(signal_id, sym, _ts, action, confidence, rationale, version, cited)] = rows
    assert (signal_id, sym, action, confidence, rationale, version) == (f"{run}-a", symbol, "BUY", 0.7, "rests on two", "a-1")
    assert [(c["id"], c["headline"]) for c in cited] == [(ids["resolved"], "Resolved item"), (ids["missing"], None),
                                                         (ids["declared"], "Declared item")]
    assert cited[0]["source"] == "feed" and cited[0]["ts"].startswith("2004-01-15")
