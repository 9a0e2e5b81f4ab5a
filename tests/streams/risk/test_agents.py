"""Integration: the Risk agent on the real stack turns decisions into verdicts and runs backtests."""
from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest

import risk_core as rc
from streams.bus.codecs import CodecRegistry
from streams.bus.ids import derived_id
from streams.market.datasets import load_bars
from tests import fixtures
from tests.fixtures import T0
from tests.kafka_tools import Worker, all_matching, ends, first_matching, produce, read_from

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


def test_decisions_are_judged_in_event_time_against_the_fills_of_earlier_orders(risk_worker, provisioned, codecs):
    """Each decision is judged against the book as of its time: the order of an earlier decision has
    filled at the next bar's open (the broker's fill model, 1 bp slippage and fee), and positions
    are valued at the last close before the decision."""
    symbol = f"R{uuid.uuid4().hex[:6].upper()}"
    day, d0 = timedelta(days=1), T0.replace(hour=0, minute=0)
    bars = [fixtures.bar(symbol=symbol, ts=d0, open=99.0, close=100.0, high=105.0),
            fixtures.bar(symbol=symbol, ts=d0 + day, open=100.5, close=101.0, high=102.0, low=100.0),
            fixtures.bar(symbol=symbol, ts=d0 + 2 * day, open=101.5, close=102.0, high=103.0, low=101.0)]
    publish(provisioned, codecs, "market.bars", symbol, bars[0])
    small = fixtures.decision(symbol=symbol, ts=d0, target_position=0.1)
    publish(provisioned, codecs, "consensus.decisions", symbol, small)
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == small["decision_id"])
    assert verdict["verdict"] == "APPROVE" and verdict["approved_quantity"] == 100  # 10% of 100,000 at 100
    assert verdict["symbol"] == symbol and verdict["limits_checked"]

    for bar in bars[1:]:
        publish(provisioned, codecs, "market.bars", symbol, bar)
    # the consensus decides every bar; the risk agent judges them in order
    hold = fixtures.decision(symbol=symbol, ts=d0 + day, action="HOLD", target_position=0.0)
    publish(provisioned, codecs, "consensus.decisions", symbol, hold)
    big = fixtures.decision(symbol=symbol, ts=d0 + 2 * day, target_position=1.0)
    publish(provisioned, codecs, "consensus.decisions", symbol, big)
    verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == big["decision_id"])
    fill_price = 100.5 * 1.0001
    cash = 100_000 - 100 * fill_price - 100 * fill_price * 1e-4
    equity = cash + 100 * 101.0  # the position, valued at the close before the decision
    assert verdict["requested_quantity"] == pytest.approx(math.floor(equity / 102.0) - 100)
    assert verdict["verdict"] == "RESIZE" and 0 < verdict["approved_quantity"] < verdict["requested_quantity"]
    assert (100 + verdict["approved_quantity"]) * 102.0 <= 25_000 + 102.0  # the position limit binds
    assert "POSITION_LIMIT" in verdict["reason_codes"]


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


def test_a_symbol_whose_decisions_lag_but_keep_coming_is_waited_for(provisioned, codecs, tmp_path):
    """One symbol's decisions come one a second, the other's all at once: with RISK_MAX_WAIT_S=2,
    the waits add up to far more than 2 s, yet every decision is judged in time order, because
    nothing is given up on while a consensus worker runs (a wall-clock limit on each decision's
    wait judged the prompt symbol's later decisions first when the consensus lagged)."""
    import time

    account, app_id = f"acct-{uuid.uuid4().hex[:6]}", f"test-{uuid.uuid4().hex[:8]}"
    # a consensus worker of the same app runs (and never decides: its agents never vote)
    consensus = Worker("consensus", tmp_path / "consensus.log", ALGO_APP_ID=app_id, CONSENSUS_AGENT_TIMEOUT_S="3600")
    worker = Worker("risk", tmp_path / "risk.log", ALGO_APP_ID=app_id, RISK_ACCOUNT=account, RISK_MAX_WAIT_S="2")
    run = uuid.uuid4().hex[:5].upper()
    prompt, lagging = f"P{run}", f"L{run}"
    day, d0 = timedelta(days=1), T0.replace(hour=0, minute=0)
    days = [d0 + i * day for i in range(6)]
    starts = ends(provisioned, "risk.verdicts")
    try:
        for ts in days:
            for symbol in (prompt, lagging):
                publish(provisioned, codecs, "market.bars", symbol, fixtures.bar(symbol=symbol, ts=ts))
        decisions = {(symbol, ts): fixtures.decision(symbol=symbol, ts=ts, action="HOLD", target_position=0.0)
                     for ts in days for symbol in (prompt, lagging)}
        for ts in days:
            publish(provisioned, codecs, "consensus.decisions", prompt, decisions[(prompt, ts)])
        for ts in days:
            time.sleep(1.0)
            publish(provisioned, codecs, "consensus.decisions", lagging, decisions[(lagging, ts)])
        ids = {derived_id("verdict", d["decision_id"], account) for d in decisions.values()}  # this worker's
        all_matching(provisioned, "risk.verdicts", lambda r: r["verdict_id"] in ids, len(ids), timeout=90)
    finally:
        worker.stop()
        consensus.stop()
    # in the order they were published (the symbols' verdicts go to different partitions: broker time)
    published = sorted((at, v["ts"], v["symbol"]) for at, v in read_from(provisioned, starts) if v["verdict_id"] in ids)
    judged = [ts for _, ts, _ in published]
    assert judged == sorted(judged), published  # decisions of one moment commute: only time order matters
    assert "no longer wait" not in worker.log()


def test_decisions_stop_waiting_for_other_symbols_once_no_consensus_runs(provisioned, codecs, tmp_path):
    """With no consensus worker in its app for RISK_MAX_WAIT_S, nothing will decide the symbol that
    is behind: the risk agent says so and judges what it holds."""
    worker = Worker("risk", tmp_path / "risk.log", RISK_ACCOUNT=f"acct-{uuid.uuid4().hex[:6]}", RISK_MAX_WAIT_S="2")
    run = uuid.uuid4().hex[:5].upper()
    behind, ahead = f"B{run}", f"A{run}"
    d0 = T0.replace(hour=0, minute=0)
    try:
        for symbol in (behind, ahead):
            for ts in (d0, d0 + timedelta(days=1)):
                publish(provisioned, codecs, "market.bars", symbol, fixtures.bar(symbol=symbol, ts=ts))
        later = fixtures.decision(symbol=ahead, ts=d0 + timedelta(days=1), action="HOLD", target_position=0.0)
        publish(provisioned, codecs, "consensus.decisions", ahead, later)  # `behind` has not decided day 0
        verdict = first_matching(provisioned, "risk.verdicts", lambda r: r["decision_id"] == later["decision_id"])
        assert verdict["verdict"] == "APPROVE"
    finally:
        worker.stop()
    assert "no consensus worker has run for 2 s" in worker.log()
