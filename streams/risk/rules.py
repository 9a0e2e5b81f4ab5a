"""The Risk agent's decision logic as pure functions on plain dicts (no Kafka here).

State per paper account: the paper book of streams.broker.book (shared with the broker).
Market state per symbol: {"close", "ts_us", "returns": [last RETURNS_WINDOW close-to-close returns]}.

A ConsensusDecision's target_position is a signed fraction of equity; the order it implies is the
difference between that target and the current position, at the symbol's last close. risk_core's
pre-trade check approves, resizes or rejects it; the verdict is final.
"""
from __future__ import annotations

import math
import statistics
from datetime import datetime, timezone
from typing import Mapping

import risk_core as rc
from streams.broker.book import equity
from streams.bus.ids import derived_id
from streams.market.bars import to_micros
from streams.market.periods import infer_periods
from streams.settings import RiskSettings  # defined with the one Settings (settings.risk)

RETURNS_WINDOW = 20
ORDER_HISTORY = 256


def risk_limits(settings: RiskSettings) -> rc.RiskLimits:
    """The engine's limits from the risk settings (settings.risk, RISK_*)."""
    return rc.RiskLimits(
        max_position_notional=settings.max_position_notional, max_gross_exposure=settings.max_gross_exposure,
        max_net_exposure=settings.max_net_exposure, max_order_notional=settings.max_order_notional,
        max_orders_per_window=settings.max_orders_per_window, rate_window_seconds=settings.rate_window_seconds,
        max_daily_loss=settings.max_daily_loss, max_drawdown=settings.max_drawdown, max_var=settings.max_var,
        var_confidence=settings.var_confidence, lot_size=settings.lot_size,
    )


def update_market(market: dict | None, bar: dict) -> dict:
    """Last close and a window of close-to-close returns for one symbol, from a Bar."""
    close, ts_us = float(bar["close"]), to_micros(bar["ts"])
    if market is None:
        return {"close": close, "ts_us": ts_us, "returns": []}
    if ts_us <= market["ts_us"]:  # a re-emitted or replayed bar: refresh the price only
        return {**market, "close": close} if ts_us == market["ts_us"] else market
    returns = (market["returns"] + [close / market["close"] - 1.0])[-RETURNS_WINDOW:]
    return {"close": close, "ts_us": ts_us, "returns": returns}


def volatility(market: dict) -> float:
    """Per-bar return stdev for the VaR limit (0 until there are two returns)."""
    return statistics.stdev(market["returns"]) if len(market["returns"]) >= 2 else 0.0


def _roll_day(state: dict, ts: datetime) -> dict:
    day = ts.astimezone(timezone.utc).date().isoformat()
    if state["day"] == day:
        return state
    return {**state, "day": day, "start_of_day_equity": equity(state)}


def judge(state: dict, decision: dict, markets: Mapping[str, dict], settings: RiskSettings,
          now: datetime | None = None, order_market: dict | None = None,
          pending: Mapping[str, float] | None = None) -> tuple[dict, dict]:
    """(new account state, RiskVerdict record) for one ConsensusDecision.

    `markets` values the book (each symbol's close and recent returns); `order_market` prices the
    order (default: markets[symbol]); `pending` holds, per symbol, the signed quantity of orders
    approved before and not filled yet (streams.risk.sequencer): the decision is sized and the
    limits are checked as if they had filled at the last close."""
    pending = {s: q for s, q in (pending or {}).items() if q}
    symbol = decision["symbol"]
    state = _roll_day(state, decision["ts"])
    positions = {s: {**p, "last_price": markets[s]["close"] if s in markets else p["last_price"]}
                 for s, p in state["positions"].items()}
    state = {**state, "positions": positions}
    state["peak_equity"] = max(state["peak_equity"], equity(state))
    current = positions.get(symbol, {}).get("quantity", 0.0) + pending.get(symbol, 0.0)
    # the verdict is about the decision's moment (event time), so replays stay deterministic
    # one verdict per decision and account: judging the decision again (after a restart) gives the same id
    verdict = {"verdict_id": derived_id("verdict", decision["decision_id"], settings.account),
               "decision_id": decision["decision_id"], "symbol": symbol,
               "ts": now or decision["ts"], "limits_checked": []}
    market = order_market if order_market is not None else markets.get(symbol)
    if market is None:
        return state, {**verdict, "verdict": "REJECT", "requested_quantity": 0.0, "approved_quantity": 0.0,
                       "reason_codes": ["NO_PRICE"]}
    price, account_equity = market["close"], equity(state)
    if decision["action"] == "HOLD":  # hold keeps what is held, whatever the target says
        return state, {**verdict, "verdict": "APPROVE", "requested_quantity": 0.0, "approved_quantity": 0.0,
                       "reason_codes": ["NO_CHANGE"]}
    target = decision["target_position"] * account_equity / price
    if settings.lot_size > 0:
        target = math.copysign(math.floor(abs(target) / settings.lot_size) * settings.lot_size, target)
    requested = target - current
    small = account_equity > 0 and abs(requested) * price < settings.min_rebalance * account_equity
    if abs(requested) < max(settings.lot_size, 1e-9) or small:
        return state, {**verdict, "verdict": "APPROVE", "requested_quantity": requested, "approved_quantity": 0.0,
                       "reason_codes": ["NO_CHANGE"]}
    limits = risk_limits(settings)
    seconds = to_micros(decision["ts"]) / 1e6
    exposure = with_pending(positions, pending, markets, symbol, price)
    pending_cost = sum(q * exposure[s]["last_price"] for s, q in pending.items())
    portfolio = rc.Portfolio(
        cash=state["cash"] - pending_cost,  # as if the open orders had filled: equity unchanged, exposure theirs
        positions=[rc.Position(s, p["quantity"], p["last_price"], volatility(markets[s]) if s in markets else 0.0)
                   for s, p in sorted(exposure.items())],
        start_of_day_equity=state["start_of_day_equity"], peak_equity=state["peak_equity"],
        # event time: only orders before this moment count, so decisions of the same moment commute
        order_timestamps=[t for t in state["order_ts"] if t < seconds],
    )
    order = rc.Order(symbol, 1 if requested > 0 else -1, abs(requested), price, seconds, volatility(market))
    result = rc.check_order(order, portfolio, limits)
    approved = math.copysign(result.quantity, requested) if result.approved else 0.0
    if result.approved:
        state = {**state, "order_ts": sorted(state["order_ts"] + [seconds])[-ORDER_HISTORY:]}
    verdict.update(
        verdict=result.decision.upper(), requested_quantity=requested, approved_quantity=approved,
        reason_codes=[reason.upper() for reason in result.reasons],
        limits_checked=limits_checked(result, limits, {**state, "positions": exposure}, order, approved, seconds),
    )
    return state, verdict


def with_pending(positions: Mapping[str, dict], pending: Mapping[str, float], markets: Mapping[str, dict],
                 symbol: str, price: float) -> dict[str, dict]:
    """The positions plus the open orders, each valued at its last close (the decision's at `price`)."""
    out = {s: dict(p) for s, p in positions.items()}
    for s, quantity in pending.items():
        last = markets[s]["close"] if s in markets else price if s == symbol else None
        if last is None:
            continue
        held = out.get(s, {"quantity": 0.0, "avg_price": last, "last_price": last})
        out[s] = {**held, "quantity": held["quantity"] + quantity, "last_price": last}
    return out


def limits_checked(result: rc.Verdict, limits: rc.RiskLimits, state: dict, order: rc.Order, approved: float,
                   seconds: float) -> list[dict]:
    """Every enabled limit with its value after the approved quantity; passed = it did not bind."""
    account_equity = result.equity
    position = state["positions"].get(order.symbol, {}).get("quantity", 0.0) + approved
    drawdown = 1 - account_equity / state["peak_equity"] if state["peak_equity"] > 0 else 0.0
    daily_loss = 1 - account_equity / state["start_of_day_equity"] if state["start_of_day_equity"] > 0 else 0.0
    candidates = [
        ("position_limit", limits.max_position_notional, abs(position) * order.price),
        ("gross_exposure", limits.max_gross_exposure, result.gross_exposure),
        ("net_exposure", limits.max_net_exposure, abs(result.net_exposure)),
        ("notional_cap", limits.max_order_notional, abs(approved) * order.price),
        ("rate_limit", float(limits.max_orders_per_window or math.inf),
         float(sum(1 for t in state["order_ts"] if 0 < seconds - t < limits.rate_window_seconds) + (approved != 0))),
        ("daily_loss", limits.max_daily_loss, daily_loss),
        ("drawdown", limits.max_drawdown, drawdown),
        ("var_limit", limits.max_var, result.var),
    ]
    return [{"name": name, "limit": limit, "value": value, "passed": name not in result.reasons}
            for name, limit, value in candidates if math.isfinite(limit)]


def backtest_result(request: dict, bars, now: datetime | None = None) -> dict:
    """BacktestResult record for a BacktestRequest run on `bars` (a streams.market.datasets.BarSeries)."""
    import time

    record = {"request_id": request["request_id"], "ts": now or datetime.now(timezone.utc),
              "symbol": request["symbol"], "strategy": request["strategy"], "bars": len(bars) if bars else 0,
              "stats": {}, "elapsed_us": 0, "error": None}
    if not bars:
        return {**record, "error": f"no bars for {request['symbol']}"}
    params = {k: int(v) if k in ("fast", "slow", "lookback", "vol_window") else v for k, v in request["params"].items()}
    params.setdefault("periods_per_year", infer_periods(bars.dates).per_year)  # annualised for the bars' spacing
    started = time.perf_counter()
    try:
        result = rc.backtest(bars.open, bars.close, high=bars.high, low=bars.low, volume=bars.volume,
                             strategy=request["strategy"], fee_bps=request["fee_bps"],
                             slippage_bps=request["slippage_bps"], initial_capital=request["initial_cash"],
                             record_equity=False, record_positions=False, record_trades=False, **params)
    except rc.RiskCoreError as error:
        return {**record, "error": str(error)}
    elapsed = time.perf_counter() - started
    stats = {name: float(value) for name, value in result.stats.as_dict().items()}
    stats["trades"] = stats.pop("num_trades")
    stats["periods_per_year"] = float(params["periods_per_year"])
    return {**record, "stats": stats, "elapsed_us": int(elapsed * 1e6)}
