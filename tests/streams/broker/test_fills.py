import pytest

from streams.broker.book import apply_fill, book_rows, mark, new_portfolio
from streams.broker.fills import BrokerSettings, fill_bar, fill_record, order_from_verdict, remember_bar
from streams.bus.schemas import validation_errors
from tests import fixtures


def verdict(**overrides):
    record = {"verdict_id": "v", "decision_id": "d1", "symbol": "AAPL", "ts": fixtures.T0, "verdict": "APPROVE",
              "requested_quantity": 100.0, "approved_quantity": 100.0, "reason_codes": [], "limits_checked": []}
    record.update(overrides)
    return record


def test_rejected_or_empty_verdicts_place_no_order_and_resized_ones_are_sized_down():
    assert order_from_verdict(verdict(verdict="REJECT", approved_quantity=0.0), "paper") is None
    assert order_from_verdict(verdict(approved_quantity=0.0, reason_codes=["NO_CHANGE"]), "paper") is None
    order = order_from_verdict(verdict(verdict="RESIZE", approved_quantity=-40.0), "paper")
    assert order["side"] == "SELL" and order["quantity"] == 40 and order["decision_id"] == "d1"
    assert validation_errors("Order", order) == []


def test_orders_fill_at_the_next_bars_open_with_the_backtester_costs():
    order = order_from_verdict(verdict(), "paper")
    recent = remember_bar(None, fixtures.bar(ts=fixtures.T0.replace(hour=0), open=99.0))  # the decision's own bar
    assert fill_bar(order, recent) is None
    recent = remember_bar(recent, fixtures.bar(ts=fixtures.T0.replace(day=6, hour=0), open=101.0))
    fill = fill_record(order, fill_bar(order, recent), BrokerSettings(fee_bps=10, slippage_bps=5))
    assert fill["price"] == pytest.approx(101.0 * 1.0005) and fill["fee"] == pytest.approx(100 * 101.0 * 1.0005 * 0.001)
    assert fill["order_id"] == order["order_id"] and validation_errors("Fill", fill) == []


def test_remember_bar_replaces_a_re_emitted_bar_and_keeps_order():
    a, b = fixtures.bar(ts=fixtures.T0.replace(day=6, hour=0)), fixtures.bar(ts=fixtures.T0.replace(day=5, hour=0))
    recent = remember_bar(remember_bar(remember_bar(None, a), b), {**a, "open": 1.0})
    assert [r["open"] for r in recent] == [100.0, 1.0]


def test_book_rows_report_cash_equity_pnl_and_exposure():
    state = apply_fill(new_portfolio("paper", 100_000.0), fixtures.fill(quantity=100, price=100, fee=1))
    state = mark(state, "AAPL", 110.0)
    account, positions = book_rows(state)
    assert account[:6] == ("paper", 100_000 - 10_001, 100_000 - 10_001 + 11_000, 0.0, 1_000.0, 1.0)
    assert account[6] == pytest.approx(11_000 / 100_999)
    assert positions == [("paper", "AAPL", 100, 100, 110.0, 1_000.0)]


def test_an_order_older_than_the_recent_bars_is_stale_and_never_filled():
    from datetime import timedelta

    from streams.broker.fills import RECENT_BARS, is_stale

    order = order_from_verdict(verdict(), "paper")
    recent = None
    for day in range(1, RECENT_BARS + 2):
        recent = remember_bar(recent, fixtures.bar(ts=fixtures.T0.replace(hour=0) + timedelta(days=day)))
    assert is_stale(order, recent) and fill_bar(order, recent) is None
    assert not is_stale(order, recent[:3])


def test_an_open_order_recovered_from_the_changelog_with_an_iso_time_still_fills():
    import json

    order = order_from_verdict(verdict(), "paper")
    recovered = json.loads(json.dumps(order, default=lambda ts: ts.isoformat()))  # what the table's changelog gives back
    assert isinstance(recovered["ts"], str)
    recent = remember_bar(None, fixtures.bar(ts=fixtures.T0.replace(day=6, hour=0), open=101.0))
    assert fill_bar(recovered, recent) == fill_bar(order, recent) is not None


def test_order_and_fill_ids_derive_from_the_decision_the_account_and_the_order():
    order = order_from_verdict(verdict(), "paper")
    assert order == order_from_verdict(verdict(), "paper")  # the same verdict read again: the same order
    # a re-judged verdict (another size, even another verdict id) for the same decision is the same order
    assert order_from_verdict(verdict(verdict_id="v2", approved_quantity=30.0), "paper")["order_id"] == order["order_id"]
    assert order_from_verdict(verdict(decision_id="d2"), "paper")["order_id"] != order["order_id"]
    assert order_from_verdict(verdict(), "other")["order_id"] != order["order_id"]
    bar = {"ts_us": 981_417_600_000_000, "open": 101.0, "close": 102.0}
    fill = fill_record(order, bar, BrokerSettings())
    assert fill == fill_record(order, bar, BrokerSettings())
    other = order_from_verdict(verdict(decision_id="d2"), "paper")
    assert fill_record(other, bar, BrokerSettings())["fill_id"] != fill["fill_id"]


def test_the_broker_drops_an_order_it_has_placed_and_a_fill_it_has_booked():
    from streams.broker.fills import already_placed, book_fill

    book = new_portfolio("paper", 100_000.0)
    order = order_from_verdict(verdict(), "paper")
    assert not already_placed(order, [], book)
    assert already_placed(order_from_verdict(verdict(verdict_id="v2"), "paper"), [order], book)  # still open
    recent = remember_bar(None, fixtures.bar(ts=fixtures.T0.replace(day=6, hour=0), open=101.0))
    fill = fill_record(order, fill_bar(order, recent), BrokerSettings())
    booked = book_fill(book, fill)
    assert booked["positions"]["AAPL"]["quantity"] == 100
    assert already_placed(order, [], booked)  # filled: its verdict read again places nothing
    assert book_fill(booked, fill) is None  # the same fill again changes nothing
    another = fill_record(order_from_verdict(verdict(decision_id="d2"), "paper"), fill_bar(order, recent),
                          BrokerSettings())
    assert book_fill(booked, another)["positions"]["AAPL"]["quantity"] == 200  # another order's fill counts
