import dataclasses

import numpy as np
import pytest

from streams.broker.book import new_portfolio
from streams.broker.fills import book_fill
from streams.bus.digest import trading_digest
from streams.consensus import event_time
from streams.errors import ConfigError, DataError
from streams.market.bars import to_micros
from streams.market.datasets import load_dataset
from streams.market.ticks import TICKS_PER_BAR
from streams.offline.pipeline import agent_rules, run_offline
from streams.settings import Settings

SETTINGS = Settings()
LIMIT = 2000  # ticks: the first 250 daily bars of each symbol
SYMBOLS = ["AAPL", "MSFT"]


@pytest.fixture(scope="module")
def series():
    return load_dataset("stocks", SYMBOLS)


@pytest.fixture(scope="module")
def bars(series):
    """{symbol: [(bar µs, open, close)]} of the bars the ticks up to LIMIT make (4 ticks a bar)."""
    count = LIMIT // TICKS_PER_BAR // len(series)
    return {s.symbol: list(zip(s.dates.astype("datetime64[us]").astype(np.int64)[:count].tolist(),
                               s.open[:count].tolist(), s.close[:count].tolist())) for s in series}


@pytest.fixture(scope="module")
def run(series):
    return run_offline(SETTINGS, series, "test", agents=("technical",), limit=LIMIT)


def test_every_bar_gets_one_decision_and_one_verdict(run, bars):
    expected = sorted((symbol, t) for symbol, rows in bars.items() for t, _, _ in rows)
    assert run.bars == len(expected) == 500 and run.signals == {"technical": 500}
    assert sorted((d["symbol"], to_micros(d["ts"])) for d in run.decisions) == expected
    assert all({v["agent"] for v in d["votes"]} <= {"technical"} for d in run.decisions)
    assert sorted(v["decision_id"] for v in run.verdicts) == sorted(d["decision_id"] for d in run.decisions)
    assert run.orders and run.quant_model is None


def test_orders_follow_the_verdicts_that_allow_them(run):
    verdicts = {v["decision_id"]: v for v in run.verdicts}
    decisions = {d["decision_id"]: d for d in run.decisions}
    for order in run.orders:
        verdict = verdicts[order["decision_id"]]
        assert verdict["verdict"] in ("APPROVE", "RESIZE") and abs(verdict["approved_quantity"]) == order["quantity"]
        assert order["ts"] == decisions[order["decision_id"]]["ts"]
        assert order["side"] == ("BUY" if verdict["approved_quantity"] > 0 else "SELL")


def test_each_fill_is_at_the_open_of_the_bar_after_its_orders_decision(run, bars):
    broker = SETTINGS.broker
    slip, fee_rate = broker.slippage_bps / 1e4, broker.fee_bps / 1e4
    fills = {f["order_id"]: f for f in run.fills}
    assert len(fills) == len(run.fills)  # an order fills once
    for order in run.orders:
        rows = bars[order["symbol"]]
        later = [(t, open_) for t, open_, _ in rows if t > to_micros(order["ts"])]
        if not later:  # decided on the last bar: nothing to fill at
            assert order["order_id"] not in fills
            continue
        fill, (next_us, next_open) = fills[order["order_id"]], later[0]
        assert to_micros(fill["ts"]) == next_us
        assert fill["price"] == pytest.approx(next_open * (1 + slip if order["side"] == "BUY" else 1 - slip), rel=1e-12)
        assert fill["fee"] == pytest.approx(fill["quantity"] * fill["price"] * fee_rate, rel=1e-12)
        assert (fill["side"], fill["quantity"], fill["symbol"]) == (order["side"], order["quantity"], order["symbol"])
    assert set(fills) <= {o["order_id"] for o in run.orders}


def test_the_book_is_the_fills_folded(run):
    book = new_portfolio(SETTINGS.broker.account, SETTINGS.broker.initial_cash)
    for fill in sorted(run.fills, key=lambda f: (f["ts"], f["symbol"])):
        book = book_fill(book, fill)
    assert run.book["cash"] == pytest.approx(book["cash"], rel=1e-12)
    assert run.book["fees"] == pytest.approx(book["fees"], rel=1e-12)
    assert {s: p["quantity"] for s, p in run.book["positions"].items()} == \
        {s: p["quantity"] for s, p in book["positions"].items()}


def test_two_runs_have_the_same_digest(run, series):
    again = run_offline(SETTINGS, series, "test", agents=("technical",), limit=LIMIT)
    first = trading_digest(run.decisions, run.verdicts, run.orders, run.fills, run.book)
    assert trading_digest(again.decisions, again.verdicts, again.orders, again.fills, again.book) == first
    shorter = run_offline(SETTINGS, series, "test", agents=("technical",), limit=LIMIT - 8 * TICKS_PER_BAR)
    assert trading_digest(shorter.decisions, shorter.verdicts, shorter.orders, shorter.fills,
                          shorter.book)["digest"] != first["digest"]


def test_agent_rules_keep_only_the_offline_agents_asked_for():
    rules = agent_rules(SETTINGS, ("technical",))
    assert rules.weights == {"technical": 1.0} and rules.default_weight == 0.0 and rules.bar_agents == ("technical",)
    assert not event_time.waits_for_news(rules) and event_time.expected_agents(rules) == ["technical"]
    assert dataclasses.replace(rules, weights=SETTINGS.consensus.weights, default_weight=0.0,
                               bar_agents=SETTINGS.consensus.bar_agents) == SETTINGS.consensus
    for agents in (("technical", "analyst"), ("stranger",)):
        with pytest.raises(ConfigError, match="cannot run offline"):
            agent_rules(SETTINGS, agents)


def test_run_offline_refuses_what_it_cannot_run(series):
    with pytest.raises(ConfigError, match="registered model"):
        run_offline(SETTINGS, series, "test", agents=("technical", "quant"), policy=None, limit=8)
    with pytest.raises(DataError):
        run_offline(SETTINGS, [], "test", agents=("technical",))
