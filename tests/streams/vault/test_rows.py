import math

import pytest

from streams.errors import PersistenceError
from streams.bus.topics import BY_NAME
from streams.vault.rows import SINK_BY_TOPIC, SINKS, bar_row, rows_or_errors
from tests import fixtures


def test_every_sink_reads_a_known_topic_and_is_idempotent_on_a_key():
    for sink in SINKS:
        assert sink.topic in BY_NAME
        assert "ON CONFLICT" in sink.sql
        assert sink.sql.count("%s") == len(sink.to_row(BUILDERS[sink.topic]()))


BUILDERS = {
    "market.bars": fixtures.bar, "agent.signals": fixtures.signal, "consensus.decisions": fixtures.decision,
    "agent.logs": fixtures.agent_log, "news.items": fixtures.news_item,
    "risk.verdicts": lambda: {"verdict_id": "v", "decision_id": "d", "symbol": "AAPL", "ts": fixtures.T0,
                              "verdict": "APPROVE", "requested_quantity": 1.0, "approved_quantity": 1.0,
                              "reason_codes": [], "limits_checked": []},
    "orders": lambda: {"order_id": "o", "decision_id": "d", "account": "paper", "symbol": "AAPL", "ts": fixtures.T0,
                       "side": "BUY", "quantity": 1.0, "order_type": "MARKET", "limit_price": None},
    "fills": lambda: {"fill_id": "f", "order_id": "o", "account": "paper", "symbol": "AAPL", "ts": fixtures.T0,
                      "side": "BUY", "quantity": 1.0, "price": 10.0, "fee": 0.01},
}


def test_bars_upsert_and_others_are_write_once():
    assert "DO UPDATE" in SINK_BY_TOPIC["market.bars"].sql
    assert all("DO NOTHING" in s.sql for s in SINKS if s.topic != "market.bars")


def test_non_finite_numbers_are_refused_before_the_database():
    with pytest.raises(PersistenceError, match="finite"):
        bar_row(fixtures.bar(close=math.nan))
    rows, errors = rows_or_errors(SINK_BY_TOPIC["market.bars"], [fixtures.bar(), fixtures.bar(high=math.inf), {}])
    assert [i for i, _ in rows] == [0] and [i for i, _ in errors] == [1, 2]
