from __future__ import annotations

import math

import pytest

import risk_core as rc
from risk_core import reference


def portfolio(**kw):
    base = dict(cash=100_000.0, positions=[rc.Position("AAPL", 100, 150, 0.02), rc.Position("MSFT", -50, 300, 0.015)],
                start_of_day_equity=100_000.0, peak_equity=100_000.0)
    base.update(kw)
    return rc.Portfolio(**base)


def test_approve_resize_reject():
    lim = rc.RiskLimits(max_position_notional=30_000, lot_size=1)
    v = rc.check_order(rc.Order("AAPL", "buy", 10, 150.0), portfolio(), lim)
    assert (v.decision, v.quantity, v.reasons, v.approved) == ("approve", 10, (), True)
    v = rc.check_order(rc.Order("AAPL", "buy", 500, 150.0), portfolio(), lim)
    assert (v.decision, v.quantity, v.reasons) == ("resize", 100, ("position_limit",))
    lim = rc.RiskLimits(symbol_position_notional={"AAPL": 15_000})
    v = rc.check_order(rc.Order("AAPL", 1, 1, 150.0), portfolio(), lim)
    assert (v.decision, v.quantity, v.reasons, v.approved) == ("reject", 0, ("position_limit",), False)


def test_gross_net_notional_var():
    v = rc.check_order(rc.Order("IBM", "buy", 1000, 100.0), portfolio(), rc.RiskLimits(max_gross_exposure=0.5))
    assert v.decision == "resize" and v.quantity == pytest.approx(200) and "gross_exposure" in v.reasons
    assert v.gross_exposure == pytest.approx(0.5)
    v = rc.check_order(rc.Order("IBM", "buy", 1000, 100.0), portfolio(), rc.RiskLimits(max_net_exposure=0.05))
    assert v.quantity == pytest.approx(50) and v.reasons == ("net_exposure",)
    v = rc.check_order(rc.Order("IBM", "buy", 20, 100.0), portfolio(), rc.RiskLimits(max_order_notional=1500))
    assert v.quantity == pytest.approx(15) and v.reasons == ("notional_cap",)
    v = rc.check_order(rc.Order("IBM", "buy", 10_000, 100.0, volatility=0.02), portfolio(), rc.RiskLimits(max_var=0.02))
    assert v.decision == "resize" and v.var == pytest.approx(0.02) and v.reasons == ("var_limit",)


def test_kill_switches_allow_only_reducing():
    pf = portfolio(start_of_day_equity=110_000.0)
    lim = rc.RiskLimits(max_daily_loss=0.05)
    assert rc.check_order(rc.Order("AAPL", "buy", 10, 150.0), pf, lim).reasons == ("daily_loss",)
    v = rc.check_order(rc.Order("AAPL", "sell", 500, 150.0), pf, lim)
    assert (v.decision, v.quantity) == ("resize", 100)
    v = rc.check_order(rc.Order("AAPL", "buy", 1, 150.0), portfolio(peak_equity=200_000.0), rc.RiskLimits(max_drawdown=0.2))
    assert (v.decision, v.reasons) == ("reject", ("drawdown",))


def test_rate_limit_and_engine_state():
    lim = rc.RiskLimits(max_orders_per_window=2, rate_window_seconds=1.0)
    pf = portfolio(order_timestamps=[8.0, 9.5, 9.9])
    assert rc.check_order(rc.Order("AAPL", "buy", 1, 150.0, timestamp=10.0), pf, lim).reasons == ("rate_limit",)
    engine = rc.RiskEngine(lim, 100_000.0)
    engine.set_position("AAPL", 100, 150.0, 0.02)
    assert engine.submit("AAPL", "buy", 1, 150.0, timestamp=1.0).decision == "approve"
    assert engine.submit("AAPL", "buy", 1, 150.0, timestamp=1.1).decision == "approve"
    assert engine.check("AAPL", "buy", 1, 150.0, timestamp=1.2).reasons == ("rate_limit",)
    assert engine.check("AAPL", "buy", 1, 150.0, timestamp=2.5).decision == "approve"
    engine.on_fill("AAPL", 10, 160.0, fee=1.0)
    state = engine.state()
    assert state.positions == [rc.Position("AAPL", 110, 160.0, 0.02)]
    assert state.cash == 100_000.0 - 1600.0 - 1.0
    assert engine.equity == pytest.approx(state.equity)
    assert state.order_timestamps == [1.0, 1.1]


def test_engine_matches_pure_check():
    lim = rc.RiskLimits(max_gross_exposure=0.4, max_position_notional=25_000, max_var=0.03)
    engine = rc.RiskEngine(lim, 100_000.0)
    engine.set_position("AAPL", 100, 150.0, 0.02)
    engine.set_position("MSFT", -50, 300.0, 0.015)
    for i in range(8):
        order = rc.Order("AAPL" if i % 2 else "IBM", 1, 40.0 + 30 * i, 100.0 + i, 10 + 0.1 * i, 0.02)
        a = engine.check_order(order)
        b = rc.check_order(order, engine.state(), lim)
        c = reference.check_order(order, engine.state(), lim)
        assert a == b
        assert (a.decision, a.reasons) == (c["decision"], c["reasons"]) and a.quantity == pytest.approx(c["quantity"])


@pytest.mark.parametrize(
    "order, limits, message",
    [
        (rc.Order("AAPL", "buy", -1, 150.0), rc.RiskLimits(), "quantity must be finite and > 0"),
        (rc.Order("AAPL", "buy", 1, math.nan), rc.RiskLimits(), "price must be finite and > 0"),
        (rc.Order("AAPL", "hold", 1, 150.0), rc.RiskLimits(), "side must be"),
        (rc.Order("", "buy", 1, 150.0), rc.RiskLimits(), "empty symbol"),
        (rc.Order("AAPL", "buy", 1, 150.0), rc.RiskLimits(max_gross_exposure=-1), "max_gross_exposure"),
        (rc.Order("AAPL", "buy", 1, 150.0), rc.RiskLimits(var_confidence=1.5), "var_confidence"),
        (rc.Order("IBM", "buy", 1, 150.0), rc.RiskLimits(max_var=0.1), "needs a volatility"),
    ],
)
def test_invalid_orders(order, limits, message):
    with pytest.raises(rc.RiskCoreError, match=message):
        rc.check_order(order, portfolio(), limits)


def test_engine_rejects_bad_updates():
    engine = rc.RiskEngine(rc.RiskLimits(), 1000.0)
    with pytest.raises(rc.RiskCoreError, match="price must be finite and > 0"):
        engine.set_position("AAPL", 1, -5.0)
    with pytest.raises(rc.RiskCoreError, match="quantity must be finite and > 0"):
        engine.check("AAPL", 1, 0.0, 10.0)
    with pytest.raises(rc.RiskCoreError):
        rc.RiskEngine(rc.RiskLimits(max_drawdown=-0.1), 1000.0)
