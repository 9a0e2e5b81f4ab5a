"""The oracle: a plain Python/numpy implementation of the backtester, the statistics, the risk
metrics and the pre-trade check, written from the definitions in risk_core/README.md.

It is slow (a Python loop per bar) and exists for the tests: the property tests demand that the
C++ engine and this module agree to 1e-9 on random inputs. Discrete decisions (signals, order
sizes, lot rounding, limit bounds) follow the same floating-point operations as the C++ code so
that they agree exactly; statistics are computed the numpy way and agree to rounding.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from risk_core.errors import RiskCoreError
from risk_core.types import DECISIONS, REASONS, BacktestConfig, Order, Portfolio, RiskLimits

SMA_BLOCK = 1024  # the C++ kSmaBlock


def _check_prices(name: str, x: np.ndarray) -> None:
    bad = ~(np.isfinite(x) & (x > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise RiskCoreError(f"bars: {name} must be finite and > 0, got {x[i]} at bar {i}")


def validate(open_, close, high=None, low=None, volume=None, target=None, cfg: BacktestConfig | None = None) -> None:
    n = len(close)
    if n == 0:
        raise RiskCoreError("bars: the series is empty")
    for name, arr in (("open", open_), ("high", high), ("low", low), ("volume", volume), ("target", target)):
        if arr is not None and len(arr) != n:
            raise RiskCoreError(f"bars: {name} has {len(arr)} values but close has {n}")
    _check_prices("open", open_)
    _check_prices("close", close)
    if high is not None:
        _check_prices("high", high)
    if low is not None:
        _check_prices("low", low)
    if high is not None and low is not None and (high < low).any():
        raise RiskCoreError("bars: high < low")
    if volume is not None and not (np.isfinite(volume) & (volume >= 0)).all():
        raise RiskCoreError("bars: volume must be finite and >= 0")
    if target is not None and not np.isfinite(target).all():
        raise RiskCoreError("backtest: target is not finite")
    if cfg is not None:
        if cfg.strategy == "sma" and not (cfg.fast >= 1 and cfg.slow > cfg.fast):
            raise RiskCoreError("backtest config: need 1 <= fast < slow")
        if cfg.strategy in ("momentum", "breakout") and cfg.lookback < 1:
            raise RiskCoreError("backtest config: lookback must be >= 1")
        if cfg.fee_bps < 0 or cfg.slippage_bps < 0 or cfg.slippage_bps >= 10000 or cfg.initial_capital <= 0:
            raise RiskCoreError("backtest config: out of range")
        if cfg.lot_size < 0:
            raise RiskCoreError("backtest config: lot_size must be >= 0")


# ---- signals -----------------------------------------------------------------------------------

def _direct(c: np.ndarray, t: int, w: int) -> float:
    s = 0.0
    for i in range(t + 1 - w, t + 1):
        s += float(c[i])
    return s


def sma_signal(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """+1 / -1 / 0 per bar: sum_fast * slow vs sum_slow * fast, window sums restarted from a
    direct sum at each block of SMA_BLOCK bars and rolled forward within it (np.cumsum is a
    sequential accumulation, the same additions in the same order as the C++ loop)."""
    c = np.asarray(close, dtype=np.float64)
    n = len(c)
    sig = np.zeros(n, dtype=np.int8)
    for b in range(0, n, SMA_BLOCK):
        e = min(b + SMA_BLOCK, n)
        t0 = max(b, slow - 1)
        if t0 >= e:
            continue
        wf = np.cumsum(np.concatenate([[_direct(c, t0, fast)], c[t0 + 1:e] - c[t0 + 1 - fast:e - fast]]))
        ws = np.cumsum(np.concatenate([[_direct(c, t0, slow)], c[t0 + 1:e] - c[t0 + 1 - slow:e - slow]]))
        x, y = wf * float(slow), ws * float(fast)
        sig[t0:e] = (x > y).astype(np.int8) - (x < y).astype(np.int8)
    return sig


def momentum_signal(close: np.ndarray, lookback: int) -> np.ndarray:
    c = np.asarray(close, dtype=np.float64)
    sig = np.zeros(len(c), dtype=np.int8)
    if lookback < len(c):
        d = c[lookback:] - c[:-lookback]
        sig[lookback:] = np.sign(d).astype(np.int8)
    return sig


def breakout_signal(high: np.ndarray, low: np.ndarray, close: np.ndarray, lookback: int) -> np.ndarray:
    n = len(close)
    sig = np.zeros(n, dtype=np.int8)
    state = 0
    for t in range(lookback, n):
        hh = float(np.max(high[t - lookback:t]))
        ll = float(np.min(low[t - lookback:t]))
        if close[t] > hh:
            state = 1
        elif close[t] < ll:
            state = -1
        sig[t] = state
    return sig


def _realised_vol(c: np.ndarray, t: int, window: int, ppy: float) -> float:
    s = 0.0
    for i in range(t + 1 - window, t + 1):
        s += float(c[i]) / float(c[i - 1]) - 1.0
    mean = s / window
    ss = 0.0
    for i in range(t + 1 - window, t + 1):
        d = (float(c[i]) / float(c[i - 1]) - 1.0) - mean
        ss += d * d
    return math.sqrt(ss / (window - 1)) * math.sqrt(ppy)


# ---- the backtester ----------------------------------------------------------------------------

def backtest(open_: Any, close: Any, high: Any = None, low: Any = None, volume: Any = None, target: Any = None,
             cfg: BacktestConfig = BacktestConfig()) -> dict[str, Any]:
    """Returns {"equity", "positions", "trades" (list of dicts), "stats" (dict)}."""
    o = np.asarray(open_, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    h = None if high is None else np.asarray(high, dtype=np.float64)
    lo = None if low is None else np.asarray(low, dtype=np.float64)
    v = None if volume is None else np.asarray(volume, dtype=np.float64)
    tg = None if target is None else np.asarray(target, dtype=np.float64)
    validate(o, c, h, lo, v, tg if cfg.strategy == "target" else None, cfg)
    n = len(c)
    if cfg.strategy == "target":
        if tg is None:
            raise RiskCoreError("backtest: strategy 'target' needs a target series")
        raw = tg
    elif cfg.strategy == "sma":
        raw = sma_signal(c, cfg.fast, cfg.slow).astype(np.float64)
    elif cfg.strategy == "momentum":
        raw = momentum_signal(c, cfg.lookback).astype(np.float64)
    elif cfg.strategy == "breakout":
        raw = breakout_signal(h if h is not None else c, lo if lo is not None else c, c, cfg.lookback).astype(np.float64)
    else:
        raise RiskCoreError(f"backtest config: unknown strategy {cfg.strategy!r}")

    fr = cfg.fee_bps / 10000.0
    slip = cfg.slippage_bps / 10000.0
    lot = cfg.lot_size
    vol_target = cfg.sizing == "vol_target"
    warmup = cfg.vol_window if vol_target else 0

    cash = float(cfg.initial_capital)
    q = 0.0
    s_prev = 0.0
    pending = False
    pending_w = 0.0
    traded = fees = 0.0
    fills = 0
    equity = np.empty(n)
    positions = np.empty(n)
    trades: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None

    def start(bar: int, direction: float) -> dict[str, Any]:
        return {"entry_bar": bar, "direction": direction, "entered": 0.0, "entry_cost": 0.0,
                "exited": 0.0, "exit_value": 0.0, "fees": 0.0}

    def finish(tr: dict[str, Any], bar: int, remaining: float, mark: float, closed: bool) -> None:
        exit_value = tr["exit_value"] + remaining * mark
        exit_units = tr["exited"] + remaining
        pnl = tr["direction"] * (exit_value - tr["entry_cost"]) - tr["fees"]
        trades.append({
            "entry_bar": tr["entry_bar"], "exit_bar": bar, "direction": int(tr["direction"]), "closed": closed,
            "quantity": tr["entered"], "entry_price": tr["entry_cost"] / tr["entered"],
            "exit_price": exit_value / exit_units if exit_units > 0 else 0.0, "pnl": pnl,
            "return_pct": pnl / tr["entry_cost"], "fees": tr["fees"],
        })

    def sgn(x: float) -> float:
        return float((x > 0) - (x < 0))

    for t in range(n):
        if pending:
            pending = False
            p = float(o[t])
            eq_open = cash + q * p
            pb = p * (1.0 + slip)
            qb = pending_w * eq_open / (pb * (1.0 + fr))
            if lot > 0.0:
                qb = math.trunc(qb / lot) * lot
            target_q = None
            if qb > q:
                target_q, price = qb, pb
            else:
                ps = p * (1.0 - slip)
                qs = pending_w * eq_open / (ps * (1.0 + fr))
                if lot > 0.0:
                    qs = math.trunc(qs / lot) * lot
                if qs < q:
                    target_q, price = qs, ps
            if target_q is not None:
                d = target_q - q
                notional = abs(d) * price
                fee = notional * fr
                cash = cash - d * price - fee
                traded += notional
                fees += fee
                fills += 1
                aq, at = abs(q), abs(target_q)
                if q == 0.0:
                    cur = start(t, sgn(target_q))
                    cur["entered"] += at
                    cur["entry_cost"] += at * price
                    cur["fees"] += fee
                elif target_q == 0.0 or sgn(target_q) == sgn(q):
                    if at > aq:
                        cur["entered"] += at - aq
                        cur["entry_cost"] += (at - aq) * price
                        cur["fees"] += fee
                    else:
                        cur["exited"] += aq - at
                        cur["exit_value"] += (aq - at) * price
                        cur["fees"] += fee
                        if target_q == 0.0:
                            finish(cur, t, 0.0, 0.0, True)
                            cur = None
                else:
                    cur["exited"] += aq
                    cur["exit_value"] += aq * price
                    cur["fees"] += aq * price * fr
                    finish(cur, t, 0.0, 0.0, True)
                    cur = start(t, sgn(target_q))
                    cur["entered"] += at
                    cur["entry_cost"] += at * price
                    cur["fees"] += at * price * fr
                q = target_q
        equity[t] = cash + q * float(c[t])
        positions[t] = q

        s = float(raw[t])
        if cfg.direction == "long":
            s = s if s > 0.0 else 0.0
        elif cfg.direction == "short":
            s = s if s < 0.0 else 0.0
        if t < warmup:
            s = 0.0
        if s != s_prev:
            s_prev = s
            if t + 1 < n:
                if not vol_target:
                    w = s * cfg.fraction
                elif s == 0.0:
                    w = 0.0
                else:
                    vol = _realised_vol(c, t, cfg.vol_window, cfg.periods_per_year)
                    scale = min(cfg.max_leverage, cfg.target_vol / vol) if vol > 0.0 else cfg.max_leverage
                    w = s * scale
                pending_w = w
                pending = True
    if cur is not None:
        finish(cur, n - 1, abs(q), float(c[n - 1]), False)

    stats = equity_stats(equity, cfg.initial_capital, cfg.periods_per_year)
    closed = [tr for tr in trades if tr["closed"]]
    stats.update(
        turnover=traded / cfg.initial_capital,
        num_trades=len(trades),
        hit_rate=(sum(tr["pnl"] > 0 for tr in closed) / len(closed)) if closed else 0.0,
        num_fills=fills,
        total_fees=fees,
        exposure=float(np.mean(positions != 0.0)),
    )
    return {"equity": equity, "positions": positions, "trades": trades, "stats": stats}


def equity_stats(equity: Any, initial_capital: float, periods_per_year: float = 252.0) -> dict[str, Any]:
    """Statistics of an equity curve, numpy style (see README: bar returns against the previous
    bar, the first against the initial capital; ddof 1; annualisation by periods_per_year)."""
    e = np.asarray(equity, dtype=np.float64)
    m = len(e)
    prev = np.concatenate([[initial_capital], e[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev > 0, e / np.where(prev > 0, prev, 1.0) - 1.0, 0.0)
    ann = math.sqrt(periods_per_year)
    growth = e[-1] / initial_capital
    with np.errstate(over="ignore"):
        annualized = float(np.float64(growth) ** (periods_per_year / m) - 1.0) if growth > 0 else -1.0
    out: dict[str, Any] = {
        "final_equity": float(e[-1]),
        "total_return": float(growth - 1.0),
        "annualized_return": annualized,
    }
    mean = float(np.mean(r))
    sd = float(np.std(r, ddof=1)) if m > 1 else 0.0
    out["volatility"] = sd * ann
    out["sharpe"] = mean / sd * ann if sd > 0 else 0.0
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    out["sortino"] = mean / down * ann if down > 0 else 0.0
    peak = np.maximum.accumulate(np.concatenate([[initial_capital], e]))[1:]
    out["max_drawdown"] = float(np.max(1.0 - e / peak)) if m else 0.0
    under = e < peak
    longest = run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    out["max_drawdown_duration"] = longest
    return out


# ---- risk metrics ------------------------------------------------------------------------------

def _returns(returns: Any) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        raise RiskCoreError("the returns series is empty")
    if not np.isfinite(r).all():
        raise RiskCoreError("returns is not finite")
    return r


def historical_var(returns: Any, confidence: float) -> float:
    return -float(np.quantile(_returns(returns), 1.0 - confidence))


def historical_cvar(returns: Any, confidence: float) -> float:
    r = _returns(returns)
    q = float(np.quantile(r, 1.0 - confidence))
    return -float(np.mean(r[r <= q]))


def parametric_var(returns: Any, confidence: float) -> float:
    r = _returns(returns)
    sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    return -(float(np.mean(r)) + sd * NormalDist().inv_cdf(1.0 - confidence))


def parametric_cvar(returns: Any, confidence: float) -> float:
    r = _returns(returns)
    sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    z = NormalDist().inv_cdf(1.0 - confidence)
    return -(float(np.mean(r)) - sd * NormalDist().pdf(z) / (1.0 - confidence))


def rolling_volatility(returns: Any, window: int, periods_per_year: float = 252.0, annualize: bool = True) -> np.ndarray:
    r = _returns(returns)
    out = np.full(len(r), np.nan)
    for t in range(window - 1, len(r)):
        out[t] = np.std(r[t + 1 - window:t + 1], ddof=1)
    return out * (math.sqrt(periods_per_year) if annualize else 1.0)


def drawdown(equity: Any) -> tuple[np.ndarray, float, int]:
    e = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(e)
    dd = 1.0 - e / peak
    under = e < peak
    longest = run = 0
    for u in under:
        run = run + 1 if u else 0
        longest = max(longest, run)
    return dd, float(dd.max()), longest


# ---- the pre-trade check -----------------------------------------------------------------------

def _bound(u: float, k: float, c: float, limit: float) -> float:
    """Largest x >= 0 with k|u + x| + c <= max(limit, k|u| + c)."""
    if not k > 0.0:
        return math.inf
    now = k * abs(u) + c
    cap = max(limit, now)
    x = (cap - c) / k - u
    return x if x > 0.0 else 0.0


def check_order(order: Order, portfolio: Portfolio, limits: RiskLimits) -> dict[str, Any]:
    """Returns {"decision", "quantity", "reasons", "equity", "gross_exposure", "net_exposure", "var"}."""
    side = {1: 1, -1: -1, "buy": 1, "sell": -1}.get(order.side)
    if side is None or not (order.quantity > 0 and math.isfinite(order.quantity)) or not (order.price > 0 and math.isfinite(order.price)):
        raise RiskCoreError("pre-trade check: invalid order")
    p, s = float(order.price), float(side)
    equity = gross = net = risk = float(portfolio.cash)
    gross = net = risk = 0.0
    own = None
    for pos in portfolio.positions:
        notional = pos.quantity * pos.price
        equity += notional
        gross += abs(notional)
        net += notional
        risk += abs(notional) * pos.volatility
        if pos.symbol == order.symbol:
            own = pos
    q0 = own.quantity if own else 0.0
    p0 = own.price if own else p
    vol = order.volatility if order.volatility is not None else (own.volatility if own else -1.0)
    if vol < 0:
        if math.isfinite(limits.max_var):
            raise RiskCoreError("pre-trade check: the VaR limit needs a volatility")
        vol = 0.0
    own_notional = abs(q0 * p0)
    gross_o = max(0.0, gross - own_notional)
    net_o = net - q0 * p0
    risk_o = max(0.0, risk - own_notional * (own.volatility if own else 0.0))
    z = NormalDist().inv_cdf(limits.var_confidence)
    v = s * q0
    X = float(order.quantity)
    reasons = 0
    best = X

    def apply(b: float, bit: int) -> None:
        nonlocal reasons, best
        if b < X:
            reasons |= bit
        if b < best:
            best = b

    blocked = False
    max_orders = limits.max_orders_per_window
    if max_orders is not None:
        recent = sum(1 for ts in portfolio.order_timestamps if ts > order.timestamp - limits.rate_window_seconds)
        if recent + 1 > max_orders:
            reasons |= 1 << 4
            blocked = True
    reduce_only = -v if v < 0.0 else 0.0
    sod, peak = portfolio.start_of_day_equity, portfolio.peak_equity
    if sod > 0 and math.isfinite(limits.max_daily_loss) and (sod - equity) / sod >= limits.max_daily_loss:
        apply(reduce_only, 1 << 5)
    if peak > 0 and math.isfinite(limits.max_drawdown) and (peak - equity) / peak >= limits.max_drawdown:
        apply(reduce_only, 1 << 6)
    pos_limit = limits.symbol_position_notional.get(order.symbol, limits.max_position_notional)
    if math.isfinite(pos_limit):
        apply(_bound(v, p, 0.0, pos_limit), 1 << 0)
    if math.isfinite(limits.max_order_notional):
        apply(limits.max_order_notional / p, 1 << 3)
    if math.isfinite(limits.max_gross_exposure):
        apply(_bound(v, p, gross_o, limits.max_gross_exposure * equity), 1 << 1)
    if math.isfinite(limits.max_net_exposure):
        apply(_bound(v + s * net_o / p, p, 0.0, limits.max_net_exposure * equity), 1 << 2)
    if math.isfinite(limits.max_var):
        apply(_bound(v, z * p * vol, z * risk_o, limits.max_var * equity), 1 << 7)

    x = 0.0 if blocked else best
    if x < X:
        if limits.lot_size > 0:
            lots = math.floor(x / limits.lot_size) * limits.lot_size
            if lots <= 0.0 and x > 0.0:
                reasons |= 1 << 8
            x = lots
        decision = 1 if x > 0.0 else 2
        x = max(x, 0.0)
    else:
        x, decision, reasons = X, 0, 0
    after = abs(v + x) * p
    if equity > 0:
        gross_after = (gross_o + after) / equity
        net_after = (net_o + s * (v + x) * p) / equity
        var_after = z * (risk_o + after * vol) / equity
    else:
        gross_after = net_after = var_after = math.nan
    return {
        "decision": DECISIONS[decision], "quantity": x,
        "reasons": tuple(name for i, name in enumerate(REASONS) if reasons & (1 << i)),
        "equity": equity, "gross_exposure": gross_after, "net_exposure": net_after, "var": var_after,
    }
