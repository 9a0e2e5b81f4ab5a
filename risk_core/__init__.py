"""risk_core: the C++17 risk engine behind Cython, with a plain Python API.

    import risk_core as rc
    result = rc.backtest(open, close, strategy="sma", fast=10, slow=50, fee_bps=5)
    result.stats.sharpe, result.equity, result.trades

    verdict = rc.check_order(rc.Order("AAPL", "buy", 100, 150.0), portfolio, limits)
    engine = rc.RiskEngine(limits, cash=1e6); engine.check("AAPL", 1, 100, 150.0)

Arrays go to the engine without a copy when they already are float64 and C-contiguous (anything
else is converted once). Every error is RiskCoreError. risk_core.reference holds the plain
Python/numpy oracle the tests compare against.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from risk_core.errors import RiskCoreError
from risk_core.types import (
    DECISIONS,
    DIRECTIONS,
    REASONS,
    SIZINGS,
    STAT_FIELDS,
    STRATEGIES,
    TRADE_DTYPE,
    BacktestConfig,
    BacktestResult,
    BacktestStats,
    Drawdown,
    Order,
    Portfolio,
    Position,
    RiskLimits,
    SweepResult,
    Trade,
    Verdict,
)

try:
    from risk_core import _engine
except ImportError as error:  # pragma: no cover - only without a build
    raise ImportError(
        "risk_core's C++ extension is not built: run `pip install -e .` (or bash ops/bootstrap.sh) "
        f"in the project root ({error})"
    ) from error

__all__ = [
    "BacktestConfig", "BacktestResult", "BacktestStats", "Drawdown", "Order", "Portfolio", "Position",
    "RiskCoreError", "RiskEngine", "RiskLimits", "SweepResult", "Trade", "Verdict",
    "DECISIONS", "DIRECTIONS", "REASONS", "SIZINGS", "STAT_FIELDS", "STRATEGIES", "TRADE_DTYPE",
    "backtest", "backtest_frame", "check_order", "drawdown", "equity_stats", "historical_cvar",
    "historical_var", "make_config", "normal_ppf", "parametric_cvar", "parametric_var",
    "rolling_volatility", "sweep",
]

_ALIASES = {"long_only": "long", "short_only": "short", "longshort": "long_short", "both": "long_short",
            "sma_cross": "sma", "fixed_fraction": "fixed", "vol": "vol_target"}


def _array(values: Any, name: str) -> np.ndarray:
    """float64, C-contiguous, 1-d; a view when the input already is one."""
    try:
        arr = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RiskCoreError(f"{name}: not a numeric array ({error})") from None
    if arr.ndim != 1:
        raise RiskCoreError(f"{name}: expected a 1-d array, got shape {arr.shape}")
    return arr


def _optional(values: Any, name: str) -> np.ndarray | None:
    return None if values is None else _array(values, name)


def make_config(config: BacktestConfig | None = None, **params: Any) -> BacktestConfig:
    """A BacktestConfig from `config` (or the defaults) with `params` replaced."""
    base = config if config is not None else BacktestConfig()
    fields = {f.name for f in dataclasses.fields(BacktestConfig)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise RiskCoreError(f"backtest: unknown parameter(s) {', '.join(unknown)}")
    for key in ("strategy", "direction", "sizing"):
        if key in params and isinstance(params[key], str):
            params[key] = _ALIASES.get(params[key].lower(), params[key].lower())
    return dataclasses.replace(base, **params)


def backtest(open: Any, close: Any, *, high: Any = None, low: Any = None, volume: Any = None,
             target: Any = None, config: BacktestConfig | None = None, record_equity: bool = True,
             record_positions: bool = True, record_trades: bool = True, **params: Any) -> BacktestResult:
    """Backtests one symbol.

    open, close (and optionally high, low, volume): per-bar arrays of equal length. Signals use
    data up to bar t's close and trade at bar t+1's open. target: per-bar signed fractions of
    equity (implies strategy="target"). params override fields of `config` (BacktestConfig):
    strategy, fast, slow, lookback, direction, sizing, fraction, target_vol, vol_window,
    max_leverage, fee_bps, slippage_bps, initial_capital, lot_size, periods_per_year.
    """
    if target is not None and "strategy" not in params and (config is None or config.strategy != "target"):
        params["strategy"] = "target"
    cfg = make_config(config, **params)
    o, c = _array(open, "open"), _array(close, "close")
    h, l, v = _optional(high, "high"), _optional(low, "low"), _optional(volume, "volume")
    t = _optional(target, "target")
    if cfg.strategy == "target" and t is None:
        raise RiskCoreError("backtest: strategy 'target' needs a target series")
    stats, equity, positions, trades = _engine.backtest(
        o, c, h, l, v, t if cfg.strategy == "target" else None, cfg, record_equity, record_positions, record_trades
    )
    return BacktestResult(stats, equity, positions, trades, cfg)


def _columns(bars: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(open, high, low, close, volume) from a DataFrame, a mapping or an object with attributes."""
    def get(name: str, required: bool) -> Any:
        for key in (name, name.capitalize()):
            if isinstance(bars, Mapping) or hasattr(bars, "columns"):
                if key in bars:
                    return np.asarray(bars[key], dtype=np.float64)
            elif hasattr(bars, key):
                return getattr(bars, key)
        if required:
            raise RiskCoreError(f"bars: no {name!r} column")
        return None

    return get("open", True), get("high", False), get("low", False), get("close", True), get("volume", False)


def backtest_frame(bars: Any, **kwargs: Any) -> BacktestResult:
    """backtest() on a DataFrame (or mapping) with open/high/low/close/volume columns."""
    o, h, l, c, v = _columns(bars)
    return backtest(o, c, high=h, low=l, volume=v, **kwargs)


def sweep(symbols: Mapping[str, Any] | Sequence[Any], params: Any, *, config: BacktestConfig | None = None,
          threads: int = 0, **overrides: Any) -> SweepResult:
    """Every (symbol, parameter) pair, spread over `threads` threads (0: every core).

    symbols: a mapping name -> bars, or a sequence of bars (DataFrame / mapping with
    open/high/low/close/volume). params: pairs (fast, slow) for "sma", lookbacks (or
    (lookback, 0) pairs) for "momentum" and "breakout".
    """
    cfg = make_config(config, **overrides)
    if isinstance(symbols, Mapping):
        names = tuple(str(k) for k in symbols)
        frames = list(symbols.values())
    else:
        frames = list(symbols)
        names = tuple(str(i) for i in range(len(frames)))
    arrays = []
    for name, frame in zip(names, frames):
        o, h, l, c, v = _columns(frame)
        arrays.append((_array(o, f"{name}: open"), _optional(h, f"{name}: high"), _optional(l, f"{name}: low"),
                       _array(c, f"{name}: close"), _optional(v, f"{name}: volume")))
    grid = np.asarray(params)
    if grid.ndim == 1:
        grid = np.stack([grid, np.zeros_like(grid)], axis=1)
    if grid.ndim != 2 or grid.shape[1] != 2 or not np.all(np.isfinite(grid)) or np.any(grid != np.round(grid)):
        raise RiskCoreError("sweep: params must be integer pairs (m x 2) or a list of integers")
    grid = np.ascontiguousarray(grid, dtype=np.int64)
    if threads < 0:
        raise RiskCoreError(f"sweep: threads must be >= 0, got {threads}")
    stats = _engine.sweep(arrays, grid, cfg, threads)
    return SweepResult(names, grid, stats, cfg)


def equity_stats(equity: Any, initial_capital: float | None = None, periods_per_year: float = 252.0) -> BacktestStats:
    """Return, risk and drawdown statistics of an equity curve (trade fields are 0).
    initial_capital defaults to the first value."""
    e = _array(equity, "equity")
    if initial_capital is None:
        if len(e) == 0:
            raise RiskCoreError("equity_stats: the equity curve is empty")
        initial_capital = float(e[0])
    return _engine.stats_of_equity(e, float(initial_capital), float(periods_per_year))


def historical_var(returns: Any, confidence: float = 0.99) -> float:
    """-quantile(returns, 1 - confidence) (numpy's linear interpolation), a positive loss."""
    return _engine.var_cvar(_array(returns, "returns"), float(confidence), "historical_var")


def historical_cvar(returns: Any, confidence: float = 0.99) -> float:
    """-mean of the returns at or below the (1 - confidence) quantile."""
    return _engine.var_cvar(_array(returns, "returns"), float(confidence), "historical_cvar")


def parametric_var(returns: Any, confidence: float = 0.99) -> float:
    """Gaussian VaR: -(mean + stdev * z_(1 - confidence)), stdev with ddof 1."""
    return _engine.var_cvar(_array(returns, "returns"), float(confidence), "parametric_var")


def parametric_cvar(returns: Any, confidence: float = 0.99) -> float:
    """Gaussian expected shortfall: -(mean - stdev * pdf(z) / (1 - confidence))."""
    return _engine.var_cvar(_array(returns, "returns"), float(confidence), "parametric_cvar")


def normal_ppf(p: float) -> float:
    return _engine.norm_ppf(float(p))


def rolling_volatility(returns: Any, window: int, periods_per_year: float = 252.0, annualize: bool = True) -> np.ndarray:
    """Rolling stdev (ddof 1) of `window` returns; NaN for the first window - 1 values."""
    if int(window) != window:
        raise RiskCoreError(f"rolling_volatility: window must be an integer, got {window!r}")
    return _engine.rolling_vol(_array(returns, "returns"), int(window), float(periods_per_year), bool(annualize))


def drawdown(equity: Any) -> Drawdown:
    """Drawdown series (1 - equity / running peak), its maximum and longest duration."""
    return _engine.drawdown_of(_array(equity, "equity"))


def check_order(order: Order, portfolio: Portfolio, limits: RiskLimits) -> Verdict:
    """The pre-trade check of one order: approve, resize (to the largest quantity that passes
    every limit) or reject, with reason codes (Verdict.reasons)."""
    return _engine.check(order, portfolio, limits)


class RiskEngine(_engine.Engine):
    """Stateful pre-trade checks for the hot path.

        engine = RiskEngine(RiskLimits(max_gross_exposure=2.0), cash=1_000_000)
        engine.set_position("AAPL", 100, 150.0, volatility=0.02)
        verdict = engine.check("MSFT", "buy", 50, 300.0, timestamp=time.time())

    Methods: set_position, mark, on_fill, set_cash, start_day, set_peak_equity, record_order,
    check, submit (check + record unless rejected), check_order(Order), state() -> Portfolio.
    """

    __slots__ = ()
