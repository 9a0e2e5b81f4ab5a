"""One paper book for the risk agent and the broker (streams.broker.book)."""
import pytest

from streams.broker import book
from streams.broker.fills import BrokerSettings
from streams.risk.rules import RiskSettings
from tests import fixtures


def test_risk_and_broker_fold_fills_with_the_one_book_and_the_one_fill_model():
    import streams.broker.agents as broker_agents
    import streams.risk.rules as rules
    import streams.risk.sequencer as sequencer

    import streams.broker.fills as fills

    assert sequencer.new_portfolio is book.new_portfolio is broker_agents.new_portfolio
    # both fold a fill once (a repeat after a restart is dropped) through the one apply_fill, and the
    # risk agent prices the fills of its orders with the broker's own fill function
    assert sequencer.book_fill is fills.book_fill is broker_agents.book_fill and fills.apply_fill is book.apply_fill
    assert sequencer.fill_record is fills.fill_record is broker_agents.fill_record
    assert not hasattr(rules, "apply_fill") and not hasattr(rules, "new_portfolio")  # no second copy to drift


def test_both_agents_start_the_account_from_the_same_cash():
    env = {"RISK_ACCOUNT": "acct", "RISK_INITIAL_CASH": "2500.5"}
    risk, broker = RiskSettings.from_env(env), BrokerSettings.from_env(env)
    assert book.new_portfolio(risk.account, risk.initial_cash) == book.new_portfolio(broker.account, broker.initial_cash)
    assert book.new_portfolio(broker.account, broker.initial_cash)["cash"] == 2500.5


def test_the_same_fills_give_the_same_book_whatever_marks_came_between():
    fills = [fixtures.fill(quantity=100, price=100, fee=1), fixtures.fill(side="SELL", quantity=40, price=110, fee=1)]
    risk = broker = book.new_portfolio("paper", 100_000.0)
    for fill in fills:
        risk = book.apply_fill(risk, fill)
        broker = book.mark(book.apply_fill(broker, fill), "AAPL", 123.0)  # the broker marks at each bar
    kept = ("cash", "realised_pnl", "fees")
    assert {k: risk[k] for k in kept} == {k: broker[k] for k in kept}
    assert risk["positions"]["AAPL"]["quantity"] == broker["positions"]["AAPL"]["quantity"] == 60
    assert risk["positions"]["AAPL"]["avg_price"] == broker["positions"]["AAPL"]["avg_price"] == 100
    assert book.equity(broker) == pytest.approx(risk["cash"] + 60 * 123.0)
