"""Integration: the Risk agent on the real stack turns decisions into verdicts and runs backtests."""
from __future__ import annotations

import uuid

import pytest

import risk_core as rc
from streams.bus.codecs import CodecRegistry
from streams.market.datasets import load_bars
from tests import fixtures
from tests.kafka_tools import Worker, first_matching, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def risk_worker(provisioned, tmp_path_factory):
    worker = Worker("risk", tmp_path_factory.mktemp("risk") / "risk.log", RISK_ACCOUNT=f"acct-{uuid.uuid4().hex[:6]}")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def codecs(provisioned):
    return CodecRegistry(provisioned.schema_registry_url)


def publish(settings, codecs, topic, key, record):
    return produce(settings, topic, key.encode(), codecs.for_topic(topic).encode(record))


def test_decisions_become_verdicts_and_fills_change_the_book(risk_worker, provisioned, codecs):
    symbol = f"R{uuid.uuid4().hex[:6].upper()}"
    publish(provisioned, codecs, "market.bars", symbol, fixtures.bar(symbol=symbol, close=100.0, high=105.0))

    small = fixtures.decision(symbol=symbol, target_position=0.1)
    publish(provisioned, codecs, "consensus.decisions", symbol, small)
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == small["decision_id"])
    if verdict["reason_codes"] == ["NO_PRICE"]:  # the bar and the decision raced; the price is there now
        small = fixtures.decision(symbol=symbol, target_position=0.1)
        publish(provisioned, codecs, "consensus.decisions", symbol, small)
        verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == small["decision_id"])
    assert verdict["verdict"] == "APPROVE" and verdict["approved_quantity"] == 100
    assert verdict["symbol"] == symbol and verdict["limits_checked"]

    big = fixtures.decision(symbol=symbol, target_position=1.0)
    publish(provisioned, codecs, "consensus.decisions", symbol, big)
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == big["decision_id"])
    assert verdict["verdict"] == "RESIZE" and verdict["requested_quantity"] == 1000
    assert verdict["approved_quantity"] == 200 and "NOTIONAL_CAP" in verdict["reason_codes"]

    # a fill of 240 units: the 25,000 position limit now leaves 10 units for a further buy
    worker_account = risk_worker_account(risk_worker)
    publish(provisioned, codecs, "fills", symbol,
            fixtures.fill(account=worker_account, symbol=symbol, quantity=240.0, price=100.0, fee=0.0))
    after = fixtures.decision(symbol=symbol, target_position=1.0)
    publish(provisioned, codecs, "consensus.decisions", symbol, after)
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == after["decision_id"])
    assert verdict["verdict"] == "RESIZE" and verdict["requested_quantity"] == 1000 - 240
    assert verdict["approved_quantity"] == 10 and "POSITION_LIMIT" in verdict["reason_codes"]


def risk_worker_account(worker: Worker) -> str:
    return worker.environment["RISK_ACCOUNT"]


def test_backtest_requests_get_results_from_the_engine(risk_worker, provisioned, codecs):
    request = fixtures.backtest_request(params={"fast": 20.0, "slow": 100.0})
    publish(provisioned, codecs, "backtest.requests", request["request_id"], request)
    result = first_matching(provisioned, "backtest.results", lambda r: r["request_id"] == request["request_id"])
    bars = load_bars("stocks", "AAPL")
    expected = rc.backtest(bars.open, bars.close, fast=20, slow=100, fee_bps=1.0, slippage_bps=1.0)
    assert result["error"] is None and result["bars"] == len(bars)
    assert result["stats"]["final_equity"] == pytest.approx(expected.stats.final_equity, rel=1e-9)
    assert result["stats"]["trades"] == expected.stats.num_trades and result["elapsed_us"] > 0

    unknown = fixtures.backtest_request(symbol="NOPE")
    publish(provisioned, codecs, "backtest.requests", unknown["request_id"], unknown)
    result = first_matching(provisioned, "backtest.results", lambda r: r["request_id"] == unknown["request_id"])
    assert result["error"] == "no bars for NOPE" and result["stats"] == {}


def test_undecodable_decision_is_dead_lettered(risk_worker, provisioned):
    partition, offset = produce(provisioned, "consensus.decisions", b"X", b"\x00\x00\x00\x00\x05junk")
    letter = first_matching(provisioned, "dead-letter", lambda r: r["source_topic"] == "consensus.decisions"
                            and r["partition"] == partition and r["offset"] == offset)
    assert letter["agent"] == "risk" and letter["error_type"] == "CodecError"
