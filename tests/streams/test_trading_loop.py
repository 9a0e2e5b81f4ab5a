"""Integration: bars -> technical votes -> consensus -> risk verdicts -> paper orders and fills -> the book
in Postgres, all on the real stack, in one `algo worker all` process."""
from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import psycopg
import pytest

from streams.bus.codecs import CodecRegistry
from tests import fixtures
from tests.kafka_tools import Worker, first_matching, produce, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def loop_worker(provisioned, tmp_path_factory):
    account = f"acct-{uuid.uuid4().hex[:6]}"
    # the technical agent's votes alone, so the outcome does not depend on whichever quant model is registered
    worker = Worker("all", tmp_path_factory.mktemp("loop") / "all.log", RISK_ACCOUNT=account,
                    CONSENSUS_WEIGHTS="technical=1,quant=0")
    yield worker, account
    worker.stop()


def test_an_uptrend_is_bought_filled_at_the_next_open_and_booked(loop_worker, provisioned):
    worker, account = loop_worker
    codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.bars")
    symbol = f"L{uuid.uuid4().hex[:6].upper()}"
    rng = np.random.default_rng(7)
    closes = 50 * np.cumprod(1 + 0.01 + 0.003 * rng.standard_normal(45))
    start = fixtures.T0.replace(hour=0, minute=0)
    bars = []
    for i, close in enumerate(closes):
        open_ = close / (1 + 0.002)
        bars.append(fixtures.bar(symbol=symbol, ts=start + timedelta(days=i), open=open_, close=close,
                                 high=close * 1.01, low=open_ * 0.99, volume=1e6))
    for bar in bars:
        produce(provisioned, "market.bars", symbol.encode(), codec.encode(bar))

    decision = first_matching(provisioned, "consensus.decisions", lambda r: r["symbol"] == symbol and r["action"] == "BUY")
    assert decision["target_position"] > 0 and any(v["agent"] == "technical" for v in decision["votes"])
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == decision["decision_id"])
    assert verdict["verdict"] in ("APPROVE", "RESIZE") and verdict["approved_quantity"] > 0
    order = first_matching(provisioned, "orders", lambda r: r["decision_id"] == decision["decision_id"])
    assert order["side"] == "BUY" and order["quantity"] == verdict["approved_quantity"] and order["account"] == account
    fill = first_matching(provisioned, "fills", lambda r: r["order_id"] == order["order_id"])
    next_bar = next(b for b in bars if b["ts"] > decision["ts"])
    assert fill["ts"] == next_bar["ts"] and fill["price"] == pytest.approx(next_bar["open"] * 1.0001)  # 1 bp slippage
    assert fill["fee"] == pytest.approx(fill["quantity"] * fill["price"] * 1e-4)

    def book():
        with psycopg.connect(provisioned.database_url) as conn:
            account_row = conn.execute("SELECT cash, equity, fees FROM accounts WHERE account = %s", (account,)).fetchone()
            position = conn.execute("SELECT quantity, last_price FROM positions WHERE account = %s AND symbol = %s",
                                    (account, symbol)).fetchone()
            fills = conn.execute("SELECT count(*) FROM fills WHERE order_id = %s", (order["order_id"],)).fetchone()[0]
        return account_row and position and fills and (account_row, position)

    (cash, equity, fees), (quantity, last_price) = wait_for(book, what="the book and the fill in Postgres")
    assert float(quantity) >= fill["quantity"] and float(fees) > 0
    assert float(equity) == pytest.approx(float(cash) + float(quantity) * float(last_price), rel=1e-6)


def test_a_rejected_decision_never_becomes_an_order(loop_worker, provisioned):
    """A decision for a symbol without any price is rejected (NO_PRICE) and no order follows."""
    codecs = CodecRegistry(provisioned.schema_registry_url)
    symbol = f"N{uuid.uuid4().hex[:6].upper()}"
    decision = fixtures.decision(symbol=symbol, target_position=0.1)
    produce(provisioned, "consensus.decisions", symbol.encode(), codecs.for_topic("consensus.decisions").encode(decision))
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == decision["decision_id"])
    assert verdict["verdict"] == "REJECT"
    marker = fixtures.decision(symbol=symbol, action="HOLD", target_position=0.0)  # processed after the first one
    produce(provisioned, "consensus.decisions", symbol.encode(), codecs.for_topic("consensus.decisions").encode(marker))
    first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == marker["decision_id"])
    with pytest.raises(pytest.fail.Exception):
        first_matching(provisioned, "orders", lambda r: r["decision_id"] == decision["decision_id"], timeout=5)


def test_a_verdict_later_than_the_brokers_bar_window_fills_at_the_bar_after_its_decision(loop_worker, provisioned):
    """The risk agent can lag a fast replay by more than the broker's recent bars; the order still fills at
    the open of the bar right after its decision, read from market_data."""
    from streams.broker.fills import RECENT_BARS

    worker, account = loop_worker
    codecs = CodecRegistry(provisioned.schema_registry_url)
    symbol = f"S{uuid.uuid4().hex[:6].upper()}"
    start = fixtures.T0.replace(hour=0, minute=0)
    bars = [fixtures.bar(symbol=symbol, ts=start + timedelta(days=i), open=50.0 + i, close=50.5 + i, high=52.0 + i,
                         low=49.0 + i, volume=1e5) for i in range(RECENT_BARS + 6)]
    for bar in bars:
        produce(provisioned, "market.bars", symbol.encode(), codecs.for_topic("market.bars").encode(bar))

    def persisted():
        with psycopg.connect(provisioned.database_url) as conn:
            return conn.execute("SELECT count(*) FROM market_data WHERE symbol = %s", (symbol,)).fetchone()[0] == len(bars)

    wait_for(persisted, what="the bars in market_data")
    verdict = {"verdict_id": str(uuid.uuid4()), "decision_id": str(uuid.uuid4()), "symbol": symbol, "ts": bars[2]["ts"],
               "verdict": "APPROVE", "requested_quantity": 10.0, "approved_quantity": 10.0, "reason_codes": [],
               "limits_checked": []}
    produce(provisioned, "risk.verdicts", symbol.encode(), codecs.for_topic("risk.verdicts").encode(verdict))
    order = first_matching(provisioned, "orders", lambda r: r["decision_id"] == verdict["decision_id"])
    fill = first_matching(provisioned, "fills", lambda r: r["order_id"] == order["order_id"])
    assert fill["ts"] == bars[3]["ts"] and fill["price"] == pytest.approx(bars[3]["open"] * 1.0001)
    assert fill["account"] == account
