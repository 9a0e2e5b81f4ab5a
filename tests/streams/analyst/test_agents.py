"""Integration: the analyst worker on the real stack. News items in news.items become votes in
agent.signals that cite only earlier items, each with a record in agent.logs that the persistence worker
stores and `algo analyst replay` re-derives bit for bit; an item about an unknown company is logged and
not voted on; a malformed message is dead-lettered and the next item is still voted on."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.bus.codecs import CodecRegistry
from tests.kafka_tools import Worker, all_matching, first_matching, produce, wait_for

pytestmark = pytest.mark.integration

# a week of its own, far from the demo corpus, so the as-of retrieval sees only this test's items
T0 = datetime(2031, 3, 3, 14, 0, tzinfo=timezone.utc) + timedelta(days=7 * (uuid.uuid4().int % 500))


def news(run: str, n: int, hours: float, headline: str, body: str = "", symbols=("AAPL",)) -> dict:
    return {"id": f"{run}-{n}", "ts": T0 + timedelta(hours=hours), "source": "test", "headline": headline,
            "body": body, "symbols": list(symbols), "url": None}


@pytest.fixture(scope="module")
def workers(provisioned, tmp_path_factory):
    directory = tmp_path_factory.mktemp("analyst")
    analyst = Worker("analyst", directory / "analyst.log")
    persistence = Worker("persistence", directory / "persistence.log")
    yield provisioned, analyst
    analyst.stop()
    persistence.stop()


@pytest.fixture
def run_id(provisioned):
    run = f"analyst-test-{uuid.uuid4().hex[:8]}"
    yield run
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM news WHERE id LIKE %s", (f"{run}-%",))
        conn.execute("DELETE FROM agent_logs WHERE agent = 'analyst' AND context->>'news_id' LIKE %s", (f"{run}-%",))
        conn.execute("DELETE FROM signals WHERE agent = 'analyst' AND input_refs[1] LIKE %s", (f"news:{run}-%",))


def publish(settings, items: list[dict]) -> None:
    codec = CodecRegistry(settings.schema_registry_url).for_topic("news.items")
    for item in items:
        produce(settings, "news.items", item["id"].encode(), codec.encode(item))


def test_votes_cite_only_earlier_items_and_replay_bit_for_bit(workers, run_id):
    settings, analyst = workers
    items = [
        news(run_id, 1, 0, "Apple reports record quarterly profit as iPhone sales surge",
             "Revenue and earnings beat analysts' estimates."),
        news(run_id, 2, 20, "Apple shares fall after the company warns of weaker margins",
             "The outlook for the next quarter was below expectations."),
        news(run_id, 3, 30, "Apple posts record quarterly profit as iPhone sales surge again",
             "Revenue and earnings beat estimates once more."),
    ]
    publish(settings, items[:1])  # the first is in the memory before the others are voted on
    first = first_matching(settings, "agent.signals", lambda r: r["input_refs"][:1] == [f"news:{run_id}-1"],
                           timeout=120)
    publish(settings, items[1:])
    later = all_matching(settings, "agent.signals",
                         lambda r: r["agent"] == "analyst" and r["input_refs"][0] in
                         (f"news:{run_id}-2", f"news:{run_id}-3"), 2, timeout=60)
    by_item = {s["input_refs"][0]: s for s in [first, *later]}
    assert first["agent"] == "analyst" and first["symbol"] == "AAPL" and first["input_refs"] == [f"news:{run_id}-1"]
    assert first["ts"] == items[0]["ts"]
    assert by_item[f"news:{run_id}-2"]["input_refs"] == [f"news:{run_id}-2", f"news:{run_id}-1"]
    assert set(by_item[f"news:{run_id}-3"]["input_refs"]) == {f"news:{run_id}-{n}" for n in (1, 2, 3)}
    assert '"Apple reports record quarterly profit' in by_item[f"news:{run_id}-3"]["rationale"]

    with psycopg.connect(settings.database_url) as conn:
        wait_for(lambda: conn.execute("SELECT count(*) FROM agent_logs WHERE agent = 'analyst' AND "
                                      "context->>'news_id' LIKE %s", (f"{run_id}-%",)).fetchone()[0] == 3,
                 timeout=60, what="the vote records in agent_logs")
        # no vote cites an item published after it (the item itself is at the vote's time)
        late = conn.execute(
            "SELECT s.signal_id, n.id FROM signals s JOIN news n ON n.id = ANY("
            "  SELECT substr(ref, 6) FROM unnest(s.input_refs) ref) "
            "WHERE s.agent = 'analyst' AND n.ts > s.ts").fetchall()
        assert late == []
        embedded = conn.execute("SELECT count(*) FROM news WHERE id LIKE %s AND embedding IS NOT NULL",
                                (f"{run_id}-%",)).fetchone()[0]
        assert embedded == 3
    wait_for(lambda: _signal_stored(settings, first["signal_id"]), timeout=60, what="the signal in Postgres")
    for signal in by_item.values():
        result = CliRunner().invoke(cli, ["analyst", "replay", signal["signal_id"], "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["matches"] and report["differences"] == []
        assert report["rederived"]["signal"]["action"] == signal["action"]
        assert report["rederived"]["signal"]["confidence"] == signal["confidence"]


def _signal_stored(settings, signal_id: str) -> bool:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT 1 FROM signals WHERE signal_id = %s", (signal_id,)).fetchone() is not None


def test_an_unknown_company_is_logged_and_a_bad_message_dead_lettered(workers, run_id):
    settings, _ = workers
    unknown = news(run_id, 1, 0, "Nokia cuts its handset forecast", "The Finnish maker expects lower sales.",
                   symbols=())
    publish(settings, [unknown])
    note = first_matching(settings, "agent.logs", lambda r: r["context"].get("news_id") == unknown["id"], timeout=120)
    assert note["level"] == "WARNING" and "not voted on" in note["message"]
    produce(settings, "news.items", f"{run_id}-bad".encode(), b"\x00\x00\x00\x00\x07not avro")
    dead = first_matching(settings, "dead-letter", lambda r: r["source_topic"] == "news.items" and
                          r["agent"] == "analyst" and r["key"] == f"{run_id}-bad".encode(), timeout=60)
    assert dead["error"]
    good = news(run_id, 2, 1, "Microsoft wins a large government cloud contract", symbols=("MSFT",))
    publish(settings, [good])
    vote = first_matching(settings, "agent.signals", lambda r: r["input_refs"][:1] == [f"news:{good['id']}"],
                          timeout=60)
    assert vote["symbol"] == "MSFT"
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM signals WHERE input_refs[1] = %s",
                            (f"news:{unknown['id']}",)).fetchone()[0] == 0
