"""Integration: the consensus worker on the real stack."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from streams.bus.codecs import CodecRegistry
from streams.bus.ids import derived_id
from tests import fixtures
from tests.fixtures import T0
from tests.kafka_tools import Worker, all_matching, produce_many

pytestmark = pytest.mark.integration


def test_thousands_of_bars_waiting_for_a_slow_agent_are_all_decided_in_order(provisioned, tmp_path):
    """A bar-driven agent far behind the other leaves thousands of bars undecided; their votes are
    kept one table row per bar (one row per symbol outgrew Kafka's 1 MB record limit and crashed
    the worker), and once the slow agent catches up every bar is decided once, in order."""
    worker = Worker("consensus", tmp_path / "consensus.log", CONSENSUS_BAR_AGENTS="technical,quant",
                    CONSENSUS_WEIGHTS="technical=1,quant=1,analyst=0", CONSENSUS_AGENT_TIMEOUT_S="3600")
    codecs = CodecRegistry(provisioned.schema_registry_url)
    symbol = f"W{uuid.uuid4().hex[:6].upper()}"
    key = symbol.encode()
    days = [T0.replace(hour=0, minute=0) + timedelta(days=i) for i in range(7000)]

    def votes(agent: str, action: str) -> list[tuple[bytes, bytes]]:
        return [(key, codecs.for_topic("agent.signals").encode(fixtures.signal(
            signal_id=derived_id("signal", agent, symbol, day), agent=agent, symbol=symbol, ts=day, action=action,
            confidence=0.6))) for day in days]

    try:
        produce_many(provisioned, "market.bars", [(key, codecs.for_topic("market.bars").encode(
            fixtures.bar(symbol=symbol, ts=day, close=100.0 + i % 7))) for i, day in enumerate(days)])
        produce_many(provisioned, "agent.signals", votes("technical", "BUY"))
        produce_many(provisioned, "agent.signals", votes("quant", "SELL"))  # every bar is waiting for these
        decisions = all_matching(provisioned, "consensus.decisions", lambda r: r["symbol"] == symbol, len(days),
                                 timeout=300)
        assert [d["ts"] for d in decisions] == days
        assert len({d["decision_id"] for d in decisions}) == len(days)
        assert all(sorted(v["agent"] for v in d["votes"]) == ["quant", "technical"] for d in decisions)
    finally:
        worker.stop()  # asserts nothing crashed
    assert "came after its bar was decided" not in worker.log()
