import dataclasses
import math

import pytest

import risk_core as rc
from streams.market.datasets import load_bars
from streams.errors import ConfigError
from streams.broker.book import apply_fill, equity, new_portfolio
from streams.risk.rules import RiskSettings, backtest_result, risk_limits, judge, update_market, volatility
from tests import fixtures

SETTINGS = RiskSettings(min_rebalance=0.0)  # the limits are under test here, not the rebalance band


def market(close=100.0, returns=(0.01, -0.01, 0.005)):
    return {"close": close, "ts_us": 0, "returns": list(returns)}


def test_settings_from_env_and_bad_values():
    s = RiskSettings.from_env({"RISK_MAX_GROSS_EXPOSURE": "2.5", "RISK_ACCOUNT": "acct"})
    assert s.max_gross_exposure == 2.5 and s.account == "acct" and risk_limits(s).max_gross_exposure == 2.5
    with pytest.raises(ConfigError, match="RISK_MAX_VAR"):
        RiskSettings.from_env({"RISK_MAX_VAR": "lots"})


def test_fills_move_cash_position_and_realise_pnl():
    state = apply_fill(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.fill(quantity=100, price=100, fee=1))
    assert state["cash"] == 100_000 - 10_000 - 1 and state["positions"]["AAPL"]["quantity"] == 100
    state = apply_fill(state, fixtures.fill(quantity=50, price=110, fee=1))
    assert state["positions"]["AAPL"]["avg_price"] == pytest.approx((100 * 100 + 50 * 110) / 150)
    state = apply_fill(state, fixtures.fill(side="SELL", quantity=150, price=120, fee=1))
    assert "AAPL" not in state["positions"]
    assert state["realised_pnl"] == pytest.approx(150 * 120 - (100 * 100 + 50 * 110))
    assert state["cash"] == pytest.approx(100_000 + state["realised_pnl"] - 3)
    reversed_ = apply_fill(apply_fill(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.fill(quantity=10, price=10, fee=0)),
                           fixtures.fill(side="SELL", quantity=30, price=12, fee=0))
    assert reversed_["positions"]["AAPL"] == {"quantity": -20, "avg_price": 12, "last_price": 12}
    assert reversed_["realised_pnl"] == pytest.approx(20)


def test_market_tracks_close_and_returns_without_double_counting():
    m = update_market(None, fixtures.bar(close=100.0))
    m = update_market(m, fixtures.bar(close=110.0, ts=fixtures.T0.replace(day=6)))
    again = update_market(m, fixtures.bar(close=110.0, ts=fixtures.T0.replace(day=6)))
    assert again == m and m["returns"] == [pytest.approx(0.1)]
    assert volatility(market()) > 0 and volatility(m) == 0.0


def test_a_small_order_is_approved_and_sized_from_the_target_fraction():
    state, verdict = judge(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.decision(target_position=0.1), {"AAPL": market()}, SETTINGS)
    assert verdict["verdict"] == "APPROVE" and verdict["requested_quantity"] == 100
    assert verdict["approved_quantity"] == 100 and verdict["reason_codes"] == []
    assert {c["name"] for c in verdict["limits_checked"]} >= {"position_limit", "gross_exposure", "var_limit"}
    assert all(c["passed"] for c in verdict["limits_checked"])
    assert len(state["order_ts"]) == 1


def test_position_limit_resizes_to_the_largest_size_that_passes():
    _, verdict = judge(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.decision(target_position=0.5), {"AAPL": market()}, SETTINGS)
    assert verdict["verdict"] == "RESIZE" and "POSITION_LIMIT" in verdict["reason_codes"]
    assert verdict["requested_quantity"] == 500 and verdict["approved_quantity"] == 200  # 20,000 order cap / 25,000 position
    assert verdict["approved_quantity"] * 100 <= SETTINGS.max_position_notional
    failed = {c["name"] for c in verdict["limits_checked"] if not c["passed"]}
    assert failed == {code.lower() for code in verdict["reason_codes"]}


def test_sell_decision_and_existing_position():
    state = apply_fill(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.fill(quantity=100, price=100, fee=0))
    _, verdict = judge(state, fixtures.decision(action="SELL", target_position=0.0), {"AAPL": market()}, SETTINGS)
    assert verdict["requested_quantity"] == -100 and verdict["approved_quantity"] == -100


def test_kill_switch_rejects_after_the_daily_loss():
    state = apply_fill(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.fill(quantity=200, price=100, fee=0))
    state = {**state, "day": fixtures.T0.date().isoformat(), "start_of_day_equity": 100_000}
    crashed = {"AAPL": market(close=80.0)}  # -4,000 = -4% > 3% daily loss
    _, verdict = judge(state, fixtures.decision(target_position=0.2), crashed, SETTINGS)
    assert verdict["verdict"] == "REJECT" and "DAILY_LOSS" in verdict["reason_codes"]
    assert verdict["approved_quantity"] == 0


def test_no_price_rejects_and_no_change_approves_nothing():
    _, verdict = judge(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.decision(), {}, SETTINGS)
    assert verdict["verdict"] == "REJECT" and verdict["reason_codes"] == ["NO_PRICE"]
    _, verdict = judge(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.decision(action="HOLD", target_position=0.0),
                       {"AAPL": market()}, SETTINGS)
    assert verdict["verdict"] == "APPROVE" and verdict["approved_quantity"] == 0 and verdict["reason_codes"] == ["NO_CHANGE"]


def test_verdict_records_fit_the_schema():
    from streams.bus.schemas import validation_errors

    _, verdict = judge(new_portfolio(SETTINGS.account, SETTINGS.initial_cash), fixtures.decision(target_position=0.5), {"AAPL": market()}, SETTINGS)
    assert validation_errors("RiskVerdict", verdict) == []


def test_backtest_result_is_the_engines_and_fits_the_schema():
    from streams.bus.schemas import validation_errors

    bars = load_bars("stocks", "AAPL")
    request = fixtures.backtest_request()
    result = backtest_result(request, bars)
    expected = rc.backtest(bars.open, bars.close, fast=10, slow=50, fee_bps=1.0, slippage_bps=1.0)
    assert result["error"] is None and result["bars"] == len(bars)
    assert result["stats"]["final_equity"] == pytest.approx(expected.stats.final_equity, rel=1e-12)
    assert result["stats"]["trades"] == expected.stats.num_trades
    assert validation_errors("BacktestResult", result) == []
    assert backtest_result(request, None)["error"] == "no bars for AAPL"
    bad = backtest_result(fixtures.backtest_request(params={"fast": 50.0, "slow": 10.0}), bars)
    assert bad["error"] and bad["stats"] == {}


def test_rate_limit_counts_only_orders_up_to_the_decisions_moment():
    settings = RiskSettings(max_orders_per_window=1, rate_window_seconds=3600)
    state = new_portfolio(settings.account, settings.initial_cash)
    later = fixtures.T0.timestamp() + 86400  # another symbol's stream is a day ahead
    state = {**state, "order_ts": [later]}
    _, verdict = judge(state, fixtures.decision(target_position=0.1), {"AAPL": market()}, settings)
    assert verdict["verdict"] == "APPROVE"
    state = {**state, "order_ts": [fixtures.T0.timestamp() - 60]}
    _, verdict = judge(state, fixtures.decision(target_position=0.1), {"AAPL": market()}, settings)
    assert verdict["verdict"] == "REJECT" and "RATE_LIMIT" in verdict["reason_codes"]


def test_a_decision_judged_again_gets_the_same_verdict_id_per_account():
    decision = fixtures.decision(target_position=0.1)
    _, verdict = judge(new_portfolio("paper", 100_000.0), decision, {"AAPL": market()}, SETTINGS)
    _, again = judge(new_portfolio("paper", 100_000.0), decision, {"AAPL": market()}, SETTINGS)
    assert again == verdict
    other_account = dataclasses.replace(SETTINGS, account="other")
    assert judge(new_portfolio("other", 100_000.0), decision, {"AAPL": market()}, other_account)[1]["verdict_id"] \
        != verdict["verdict_id"]
    assert judge(new_portfolio("paper", 100_000.0), fixtures.decision(), {"AAPL": market()}, SETTINGS)[1]["verdict_id"] \
        != verdict["verdict_id"]


def test_backtest_results_are_annualised_for_the_bars_spacing():
    import numpy as np

    from streams.market.datasets import BarSeries

    daily = load_bars("stocks", "AAPL")
    result = backtest_result(fixtures.backtest_request(), daily)
    assert result["stats"]["periods_per_year"] == 252
    # the same bars an hour apart, around the clock on weekdays only: 24 x 260 a year
    hours = np.datetime64("2021-01-04T00:00", "us") + np.arange(len(daily)) * np.timedelta64(1, "h")
    weekdays = ((hours.astype("datetime64[D]").astype(np.int64) + 3) % 7) < 5
    n = int(weekdays.sum())
    hourly = BarSeries("AAPL", hours[weekdays], *(getattr(daily, k)[:n] for k in ("open", "high", "low", "close",
                                                                                   "volume")))
    result = backtest_result(fixtures.backtest_request(), hourly)
    expected = rc.backtest(hourly.open, hourly.close, fast=10, slow=50, fee_bps=1.0, slippage_bps=1.0,
                           periods_per_year=6240)
    assert result["stats"]["periods_per_year"] == 6240
    assert result["stats"]["sharpe"] == pytest.approx(expected.stats.sharpe, rel=1e-12)
