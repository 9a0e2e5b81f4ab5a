import copy
from datetime import timedelta

import pytest

from streams.broker.book import new_portfolio
from streams.broker.fills import book_fill, fill_record, order_from_verdict
from streams.bus.digest import trading_digest
from streams.bus.ids import derived_id
from streams.market.bars import to_micros
from streams.settings import BrokerSettings
from tests import fixtures

DAY0 = fixtures.T0.replace(hour=0, minute=0)


def traded(account="paper"):
    """A small run's decisions, verdicts, orders, fills and book, named as the pipeline names them."""
    broker = BrokerSettings(account=account)
    decisions, verdicts, orders, fills = [], [], [], []
    book = new_portfolio(account, broker.initial_cash)
    for symbol, action, quantity, open_ in (("AAPL", "BUY", 100.0, 101.0), ("MSFT", "SELL", -40.0, 52.0),
                                           ("AAPL", "HOLD", 0.0, 103.0)):
        ts = DAY0 + timedelta(days=len(decisions) // 2)
        vote = {"signal_id": derived_id("signal", "technical", symbol, ts), "agent": "technical", "action": action,
                "confidence": 0.7, "weight": 1.0}
        decision = fixtures.decision(decision_id=derived_id("decision", symbol, ts, vote["signal_id"]), symbol=symbol,
                                     ts=ts, action=action, target_position=0.1 if action == "BUY" else -0.05,
                                     agreement=0.9, votes=[vote])
        verdict = fixtures.verdict(verdict_id=derived_id("verdict", decision["decision_id"], account),
                                   decision_id=decision["decision_id"], symbol=symbol, ts=ts,
                                   requested_quantity=quantity, approved_quantity=quantity,
                                   reason_codes=[] if quantity else ["NO_CHANGE"])
        decisions.append(decision)
        verdicts.append(verdict)
        order = order_from_verdict(verdict, account)
        if order is not None:
            orders.append(order)
            fill = fill_record(order, {"ts_us": to_micros(ts + timedelta(days=1)), "open": open_}, broker)
            fills.append(fill)
            book = book_fill(book, fill)
    return {"decisions": decisions, "verdicts": verdicts, "orders": orders, "fills": fills, "book": book}


def digest(run):
    return trading_digest(run["decisions"], run["verdicts"], run["orders"], run["fills"], run["book"])


def test_the_digest_counts_the_rows_and_ignores_their_order():
    run = traded()
    result = digest(run)
    assert (result["decisions"], result["verdicts"], result["orders"], result["fills"]) == (3, 3, 2, 2)
    shuffled = {**run, **{name: run[name][::-1] for name in ("decisions", "verdicts", "orders", "fills")}}
    assert digest(shuffled) == result
    assert digest(traded()) == result  # the same run again


def test_the_digest_ignores_the_account():
    paper, other = traded("paper"), traded("other")
    assert paper["orders"][0]["order_id"] != other["orders"][0]["order_id"]
    assert paper["verdicts"][0]["verdict_id"] != other["verdicts"][0]["verdict_id"]
    assert paper["book"]["account"] != other["book"]["account"]
    assert digest(other) == digest(paper)


def test_a_time_as_datetime_iso_text_or_micros_is_one_time():
    run = traded()
    as_text = {**run, "decisions": [{**d, "ts": d["ts"].isoformat()} for d in run["decisions"]],
               "fills": [{**f, "ts": to_micros(f["ts"])} for f in run["fills"]]}
    assert digest(as_text) == digest(run)


def _set(path, value):
    def change(run):
        target = run
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return change


CHANGES = {
    # decisions
    "decision symbol": ("decisions", _set(("decisions", 0, "symbol"), "NVDA")),
    "decision time": ("decisions", _set(("decisions", 0, "ts"), lambda ts: ts + timedelta(seconds=1))),
    "decision action": ("decisions", _set(("decisions", 0, "action"), "HOLD")),
    "decision target": ("decisions", _set(("decisions", 0, "target_position"), lambda x: x + 1e-6)),
    "decision agreement": ("decisions", _set(("decisions", 0, "agreement"), lambda x: x - 1e-6)),
    "vote agent": ("decisions", _set(("decisions", 0, "votes", 0, "agent"), "quant")),
    "vote signal": ("decisions", _set(("decisions", 0, "votes", 0, "signal_id"), "another")),
    "vote action": ("decisions", _set(("decisions", 0, "votes", 0, "action"), "SELL")),
    "vote confidence": ("decisions", _set(("decisions", 0, "votes", 0, "confidence"), 0.71)),
    "vote weight": ("decisions", _set(("decisions", 0, "votes", 0, "weight"), 1.25)),
    "a decision less": ("decisions", lambda run: run["decisions"].pop()),
    # verdicts
    "verdict decision": ("verdicts", _set(("verdicts", 2, "decision_id"), "another")),
    "verdict symbol": ("verdicts", _set(("verdicts", 2, "symbol"), "NVDA")),
    "verdict time": ("verdicts", _set(("verdicts", 2, "ts"), lambda ts: ts + timedelta(microseconds=1))),
    "verdict kind": ("verdicts", _set(("verdicts", 0, "verdict"), "RESIZE")),
    "requested quantity": ("verdicts", _set(("verdicts", 0, "requested_quantity"), 101.0)),
    "approved quantity": ("verdicts", _set(("verdicts", 0, "approved_quantity"), 99.0)),
    "reason codes": ("verdicts", _set(("verdicts", 0, "reason_codes"), ["POSITION_LIMIT"])),
    # orders (a fill is named by its order's decision)
    "order decision": ("orders fills", _set(("orders", 0, "decision_id"), "another")),
    "order symbol": ("orders", _set(("orders", 0, "symbol"), "NVDA")),
    "order time": ("orders", _set(("orders", 0, "ts"), lambda ts: ts + timedelta(days=1))),
    "order side": ("orders", _set(("orders", 0, "side"), "SELL")),
    "order quantity": ("orders", _set(("orders", 0, "quantity"), 100.001)),
    # fills
    "fill order": ("fills", lambda run: run["fills"][0].update(order_id=run["orders"][1]["order_id"])),
    "fill symbol": ("fills", _set(("fills", 0, "symbol"), "NVDA")),
    "fill time": ("fills", _set(("fills", 0, "ts"), lambda ts: ts + timedelta(hours=1))),
    "fill side": ("fills", _set(("fills", 0, "side"), "SELL")),
    "fill quantity": ("fills", _set(("fills", 0, "quantity"), 99.0)),
    "fill price": ("fills", _set(("fills", 0, "price"), lambda p: p + 1e-5)),
    "fill fee": ("fills", _set(("fills", 0, "fee"), lambda f: f + 1e-5)),
    "a fill less": ("fills", lambda run: run["fills"].pop()),
    # the book
    "cash": ("book", _set(("book", "cash"), lambda c: c + 0.01)),
    "realised pnl": ("book", _set(("book", "realised_pnl"), 0.5)),
    "fees": ("book", _set(("book", "fees"), lambda f: f + 0.01)),
    "position quantity": ("book", _set(("book", "positions", "AAPL", "quantity"), 101.0)),
    "position price": ("book", _set(("book", "positions", "AAPL", "avg_price"), lambda p: p + 1e-5)),
    "a position more": ("book", _set(("book", "positions", "NVDA"), {"quantity": 1.0, "avg_price": 9.0, "last_price": 9.0})),
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_the_digest_changes_with_any_traded_value(name):
    part, change = CHANGES[name]
    run = traded()
    before = digest(run)
    changed = copy.deepcopy(run)
    change(changed)
    after = digest(changed)
    assert after["digest"] != before["digest"]
    assert {p for p in before["parts"] if after["parts"][p] != before["parts"][p]} == set(part.split())


def test_an_empty_run_has_a_digest_too():
    empty = trading_digest([], [], [], [], None)
    assert (empty["decisions"], empty["fills"]) == (0, 0) and empty["digest"] != digest(traded())["digest"]
