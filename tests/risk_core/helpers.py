from __future__ import annotations

import math

import numpy as np

import risk_core as rc
from risk_core import reference

TOL = 1e-9


def close(a: float, b: float, tol: float = TOL) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def assert_same(engine: rc.BacktestResult, oracle: dict, tol: float = TOL) -> None:
    """The engine's result equals the oracle's to `tol` (relative, or absolute near zero)."""
    scale = max(1.0, float(np.max(np.abs(oracle["equity"]))))
    np.testing.assert_allclose(engine.equity, oracle["equity"], rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(engine.positions, oracle["positions"], rtol=tol, atol=tol)
    trades = engine.trade_list()
    assert len(trades) == len(oracle["trades"])
    for got, want in zip(trades, oracle["trades"]):
        assert (got.entry_bar, got.exit_bar, got.direction, got.closed) == (
            want["entry_bar"], want["exit_bar"], want["direction"], want["closed"])
        for name in ("quantity", "entry_price", "exit_price", "pnl", "return_pct", "fees"):
            assert close(getattr(got, name), want[name], tol * max(1.0, abs(want["quantity"]))), (name, got, want)
    stats = engine.stats.as_dict()
    for name, want in oracle["stats"].items():
        got = stats[name]
        assert close(float(got), float(want), tol * 10), (name, got, want)


def random_walk(n: int, seed: int = 0, vol: float = 0.01, start: float = 100.0):
    """open, high, low, close, volume of a geometric random walk (fixed seed)."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = close * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, vol / 2, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, vol / 2, n))
    volume = rng.uniform(1e5, 1e6, n)
    return open_, high, low, close, volume
