import math
from datetime import timedelta

import pytest

from streams.broker.book import new_portfolio
from streams.broker.fills import book_fill, fill_record
from streams.bus.ids import derived_id
from streams.market.bars import to_micros
from streams.risk import sequencer
from streams.risk.rules import RETURNS_WINDOW
from streams.settings import BrokerSettings, RiskSettings
from tests import fixtures

RISK, BROKER = RiskSettings(), BrokerSettings()
BAR0 = fixtures.T0.replace(hour=0, minute=0)
FAR = 2**62  # a horizon past every bar


def day(i):
    return BAR0 + timedelta(days=i)


def us(i):
    return to_micros(day(i))


def history_of(**bars):
    """symbol=[(open, close), ...] from day 0, or symbol={day: (open, close)}."""
    history = sequencer.BarHistory()
    for symbol, prices in bars.items():
        for i, (open_, close) in (prices.items() if isinstance(prices, dict) else enumerate(prices)):
            history.add(symbol, us(i), open_, close)
    return history


def decision(symbol, i, action="BUY", target=0.2):
    """A pending decision on bar i, its id derived as the consensus derives it."""
    record = fixtures.decision(decision_id=derived_id("decision", symbol, day(i)), symbol=symbol, ts=day(i),
                               action=action, target_position=target if action != "HOLD" else 0.0)
    return sequencer.pending_entry(record)


def pending_of(*decisions):
    return {d["decision_id"]: d for d in decisions}


def start(horizon_us=FAR, risk=RISK):
    return {**sequencer.new_state(risk), "horizon_us": horizon_us}


def judge(state, history, *decisions, risk=RISK):
    """(state, [(verdict, order)]) after judging what can be judged of `decisions`; the rest stays pending."""
    pending = pending_of(*decisions)
    state, out = sequencer.judge_ready(state, pending, history, risk, BROKER)
    return state, out


def moments(out):
    return [(verdict["symbol"], verdict["ts"]) for verdict, _ in out]


FLAT = [(100.0, 100.0)] * 6


def test_decisions_are_judged_in_time_then_symbol_order_over_all_symbols():
    history = history_of(AAPL=FLAT[:3], MSFT=FLAT[:3])
    scrambled = [decision("MSFT", 2), decision("AAPL", 1), decision("MSFT", 0), decision("AAPL", 2),
                 decision("MSFT", 1), decision("AAPL", 0)]
    state, out = judge(start(), history, *scrambled)
    assert moments(out) == [(s, day(i)) for i in range(3) for s in ("AAPL", "MSFT")]
    assert state["judged"] == {"AAPL": us(2), "MSFT": us(2)}
    assert all(sequencer.is_judged(state, d["decision_id"]) for d in scrambled)


def test_a_decision_waits_for_the_horizon():
    history = history_of(AAPL=FLAT[:1])
    for horizon in (None, us(0) - 1):
        assert judge(start(horizon), history, decision("AAPL", 0))[1] == []
    assert moments(judge(start(us(0)), history, decision("AAPL", 0))[1]) == [("AAPL", day(0))]


def test_a_decision_waits_for_its_own_bar():
    history = history_of(AAPL=FLAT[:1])
    pending = pending_of(decision("AAPL", 0), decision("AAPL", 1))
    state, out = sequencer.judge_ready(start(), pending, history, RISK, BROKER)
    assert moments(out) == [("AAPL", day(0))] and list(pending) == [decision("AAPL", 1)["decision_id"]]
    history.add("AAPL", us(1), 100.0, 100.0)
    state, out = sequencer.judge_ready(state, pending, history, RISK, BROKER)
    assert moments(out) == [("AAPL", day(1))] and pending == {}


def test_a_decision_waits_for_another_symbols_decision_on_an_earlier_bar():
    history = history_of(AAPL=FLAT[:2], MSFT=FLAT[:1])
    pending = pending_of(decision("AAPL", 0), decision("AAPL", 1))
    state, out = sequencer.judge_ready(start(), pending, history, RISK, BROKER)
    assert moments(out) == [("AAPL", day(0))]  # MSFT's bar 0 is not before AAPL's bar 0
    pending[decision("MSFT", 0)["decision_id"]] = decision("MSFT", 0)
    state, out = sequencer.judge_ready(state, pending, history, RISK, BROKER)
    assert moments(out) == [("MSFT", day(0)), ("AAPL", day(1))]


def test_fills_are_priced_at_the_next_open_and_booked_only_before_the_decision_time():
    history = history_of(AAPL=[(100.0, 100.0), (102.0, 101.0), (103.0, 104.0)])
    state, [(verdict, order)] = judge(start(), history, decision("AAPL", 0, "BUY", 0.2))
    assert verdict["approved_quantity"] == 200 and order["quantity"] == 200 and order["side"] == "BUY"
    assert state["open_orders"] == [{**order, "ts": None, "ts_us": us(0)}]
    # bar 1 opens at the decision's own time: the fill is not before it, so not in the book yet
    state, [(verdict, _)] = judge(state, history, decision("AAPL", 1, "HOLD"))
    assert state["book"]["positions"] == {} and len(state["open_orders"]) == 1
    state, [(verdict, _)] = judge(state, history, decision("AAPL", 2, "HOLD"))
    expected = fill_record(order, {"ts_us": us(1), "open": 102.0, "close": 101.0}, BROKER)
    assert expected["price"] == pytest.approx(102.0 * (1 + BROKER.slippage_bps / 1e4))
    booked = book_fill(new_portfolio(RISK.account, RISK.initial_cash), expected)
    book = state["book"]
    assert state["open_orders"] == [] and book["fill_ids"] == booked["fill_ids"]
    assert (book["cash"], book["fees"]) == (booked["cash"], booked["fees"])
    assert book["positions"]["AAPL"]["quantity"] == 200
    assert book["positions"]["AAPL"]["avg_price"] == expected["price"]
    assert book["positions"]["AAPL"]["last_price"] == 101.0  # valued at the last close before the decision


def test_the_order_is_priced_at_the_decisions_own_close():
    history = history_of(AAPL=[(100.0, 100.0), (100.0, 125.0)])
    state, _ = judge(start(), history, decision("AAPL", 0, "HOLD"))
    _, [(verdict, order)] = judge(state, history, decision("AAPL", 1, "BUY", 0.2))
    assert verdict["requested_quantity"] == 160 and order["quantity"] == 160  # 20 000 at 125


def test_an_open_order_counts_when_the_next_decision_is_sized():
    history = history_of(AAPL=FLAT[:2])
    state, [(_, first)] = judge(start(), history, decision("AAPL", 0, "BUY", 0.2))
    assert first["quantity"] == 200
    state, [(verdict, order)] = judge(state, history, decision("AAPL", 1, "BUY", 0.2))
    assert order is None and verdict["requested_quantity"] == 0 and verdict["reason_codes"] == ["NO_CHANGE"]
    assert [o["order_id"] for o in state["open_orders"]] == [first["order_id"]]  # no second order for the target


def test_open_orders_count_against_the_position_limit():
    # a target above the position limit (25 000): the first order is resized to the limit; the next
    # decisions come while it is still open (it fills at the next bar's open)
    history = history_of(AAPL=[(100.0, 100.0 + i % 2) for i in range(6)])
    state = start()
    for i in range(6):
        state, _ = judge(state, history, decision("AAPL", i, "BUY", 0.5))
    state = sequencer.fill_due_orders(state, history, FAR, BROKER)
    held = state["book"]["positions"]["AAPL"]["quantity"]
    assert held * 100.0 <= RISK.max_position_notional, f"{held} shares held against a 25 000 position limit"


def test_a_change_inside_the_rebalance_band_is_no_change():
    history = history_of(AAPL=FLAT[:1])
    # 5% of equity is inside the 10% band
    _, [(verdict, order)] = judge(start(), history, decision("AAPL", 0, "BUY", 0.05))
    assert RISK.min_rebalance == 0.1 and order is None
    assert verdict["verdict"] == "APPROVE" and verdict["reason_codes"] == ["NO_CHANGE"]
    assert verdict["requested_quantity"] == 50 and verdict["approved_quantity"] == 0
    no_band = RiskSettings(min_rebalance=0.0)
    _, [(verdict, order)] = judge(start(risk=no_band), history, decision("AAPL", 0, "BUY", 0.05), risk=no_band)
    assert order["quantity"] == 50
    _, [(_, order)] = judge(start(), history, decision("AAPL", 0, "BUY", 0.15))
    assert order["quantity"] == 150


def test_decisions_at_the_same_time_give_the_same_verdicts_in_either_order():
    history = history_of(AAPL=[(100.0, 100.0), (101.0, 102.0), (101.0, 99.0), (98.0, 97.0)],
                         MSFT=[(50.0, 50.0), (49.0, 51.0), (52.0, 53.0), (54.0, 52.0)])
    state, _ = judge(start(), history, decision("AAPL", 0, "BUY", 0.2), decision("MSFT", 0, "SELL", -0.15),
                     decision("AAPL", 1, "HOLD"), decision("MSFT", 1, "BUY", 0.2))
    assert len(state["open_orders"]) == 3  # bar 0's fill at bar 1's open: booked by the first decision at 2
    both = [decision("AAPL", 2, "SELL", -0.2), decision("MSFT", 2, "SELL", -0.2)]

    def judged_in(order):
        after, verdicts, orders = state, {}, {}
        for d in order:
            after, verdict, made = sequencer.judge_decision(after, d, history, RISK, BROKER)
            verdicts[d["symbol"]], orders[d["symbol"]] = verdict, made
        return after, verdicts, orders

    first, verdicts, orders = judged_in(both)
    second, verdicts_reversed, orders_reversed = judged_in(both[::-1])
    assert verdicts == verdicts_reversed and orders == orders_reversed
    assert orders["AAPL"] is not None and orders["MSFT"] is not None and set(first["book"]["positions"]) == {"AAPL", "MSFT"}
    for key in ("cash", "positions", "realised_pnl", "fees", "peak_equity", "start_of_day_equity", "order_ts"):
        assert first["book"][key] == second["book"][key], key
    assert sorted(o["order_id"] for o in first["open_orders"]) == sorted(o["order_id"] for o in second["open_orders"])


def test_a_symbol_that_starts_later_is_waited_for_once_its_bars_are_known():
    history = history_of(AAPL=FLAT[:4])
    pending = pending_of(*(decision("AAPL", i) for i in range(2)))
    state, out = sequencer.judge_ready(start(), pending, history, RISK, BROKER)
    assert moments(out) == [("AAPL", day(0)), ("AAPL", day(1))]  # MSFT has no bar yet
    history.add("MSFT", us(2), 50.0, 50.0)  # MSFT's first bar
    pending.update(pending_of(decision("AAPL", 2), decision("AAPL", 3)))
    state, out = sequencer.judge_ready(state, pending, history, RISK, BROKER)
    assert moments(out) == [("AAPL", day(2))]  # bar 3 waits for MSFT's decision on bar 2
    pending.update(pending_of(decision("MSFT", 2)))
    state, out = sequencer.judge_ready(state, pending, history, RISK, BROKER)
    assert moments(out) == [("MSFT", day(2)), ("AAPL", day(3))]


def test_prune_point_is_the_oldest_judged_pending_or_open_moment():
    state = start()
    assert sequencer.prune_point(state, {}) is None  # nothing judged: nothing known to be old
    state = {**state, "judged": {"AAPL": us(5), "MSFT": us(4)}}
    assert sequencer.prune_point(state, {}) == us(4)
    assert sequencer.prune_point(state, pending_of(decision("AAPL", 3))) == us(3)
    assert sequencer.prune_point({**state, "open_orders": [{"ts_us": us(2)}]}, {}) == us(2)


def test_pruning_keeps_what_later_decisions_need():
    def prices(symbol, i):
        phase = 1.0 if symbol == "AAPL" else 2.0
        close = 100.0 * (1 + 0.02 * math.sin(i * 0.7 + phase))
        return close * (1 + 0.003 * math.cos(i + phase)), close

    def run(prune):
        history, pending, state, out, gone = sequencer.BarHistory(), {}, start(None), [], []
        actions = [("BUY", 0.2), ("HOLD", 0.0), ("SELL", -0.15), ("BUY", 0.05), ("SELL", -0.2)]
        for i in range(45):
            for symbol in ("AAPL", "MSFT"):
                history.add(symbol, us(i), *prices(symbol, i))
                action, target = actions[(i + len(symbol)) % len(actions)]
                pending.update(pending_of(decision(symbol, i, action, target)))
            state, judged = sequencer.judge_ready({**state, "horizon_us": us(i)}, pending, history, RISK, BROKER)
            out += judged
            point = sequencer.prune_point(state, pending)
            if prune and point is not None:
                gone += history.prune(point, keep=RETURNS_WINDOW + 2)
        return state, out, gone

    pruned_state, pruned_out, gone = run(prune=True)
    state, out, _ = run(prune=False)
    assert len(gone) > 30 and len(out) == 90 and any(order is not None for _, order in out)
    assert pruned_out == out and pruned_state["book"] == state["book"]


def test_a_settled_decision_whose_bar_never_comes_is_rejected_for_want_of_a_price():
    history = history_of(AAPL=FLAT[:1])
    state, _ = judge(start(), history, decision("AAPL", 0, "HOLD"))
    waiting = decision("AAPL", 1)
    assert judge(state, history, waiting)[1] == []  # its bar may be on the way
    state, [(verdict, order)] = judge(state, history, {**waiting, "settled": True})
    assert verdict["verdict"] == "REJECT" and verdict["reason_codes"] == ["NO_PRICE"] and order is None
