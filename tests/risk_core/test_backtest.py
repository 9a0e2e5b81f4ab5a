from __future__ import annotations

import numpy as np
import pytest

import risk_core as rc
from risk_core import reference

from .helpers import assert_same, random_walk


def test_target_series_executes_next_open():
    close = np.array([10, 10, 11, 12, 12], float)
    open_ = np.array([10, 10, 10, 12, 13], float)
    r = rc.backtest(open_, close, target=[0, 1, 1, 0, 0], direction="long_short", initial_capital=1000)
    assert r.positions.tolist() == [0, 0, 100, 100, 0]
    assert r.equity.tolist() == [1000, 1000, 1100, 1200, 1300]
    (trade,) = r.trade_list()
    assert (trade.entry_bar, trade.exit_bar, trade.pnl, trade.closed) == (2, 4, 300.0, True)
    assert r.stats.total_return == pytest.approx(0.3)
    assert r.stats.num_trades == 1 and r.stats.hit_rate == 1.0


def test_fees_and_slippage_formula():
    c = np.full(3, 100.0)
    r = rc.backtest(c, c, target=np.ones(3), fee_bps=10, slippage_bps=50, initial_capital=1000)
    fill = 100 * 1.005
    units = 1000 / (fill * 1.001)
    assert r.positions[1] == pytest.approx(units, rel=1e-15)
    assert r.stats.total_fees == pytest.approx(units * fill * 0.001, rel=1e-12)


@pytest.mark.parametrize("strategy", ["sma", "momentum", "breakout"])
@pytest.mark.parametrize("direction", ["long", "short", "long_short"])
def test_engine_matches_oracle_on_long_series(strategy, direction):
    # long enough for several SMA blocks and the four-block lockstep path (chunks of 4096 bars)
    o, h, l, c, v = random_walk(9000, seed=3)
    cfg = rc.make_config(strategy=strategy, direction=direction, fast=7, slow=40, lookback=15, fee_bps=2,
                         slippage_bps=1)
    got = rc.backtest(o, c, high=h, low=l, volume=v, config=cfg)
    want = reference.backtest(o, c, h, l, v, cfg=cfg)
    assert_same(got, want)
    assert got.stats.num_trades > 10


@pytest.mark.parametrize("direction", ["long", "short", "long_short"])
def test_simd_and_scalar_code_agree_bit_for_bit(direction):
    # the AVX2 kernels (when the CPU has AVX2) and the portable scalar code give identical results
    from risk_core import _engine

    o, h, l, c, v = random_walk(3 * 4096 + 333, seed=11)
    kw = dict(fast=12, slow=60, direction=direction, fee_bps=1.5, slippage_bps=0.5)
    path = _engine.simd()
    try:
        fast = rc.backtest(o, c, high=h, low=l, volume=v, **kw)
        assert _engine.simd(False) == "scalar"
        slow = rc.backtest(o, c, high=h, low=l, volume=v, **kw)
    finally:
        _engine.simd(True)
    assert _engine.simd() == path
    np.testing.assert_array_equal(fast.equity, slow.equity)
    np.testing.assert_array_equal(fast.positions, slow.positions)
    np.testing.assert_array_equal(fast.trades, slow.trades)
    assert fast.stats == slow.stats


def test_large_outputs_recycle_their_buffers():
    # per-bar outputs of >= 1 MiB come from a pool: a dead result's buffers serve the next call,
    # a live one (or a view of it) keeps its own
    from risk_core import _engine

    o, h, l, c, v = random_walk(200_000, seed=2)
    _engine.release_buffers()
    first = rc.backtest(o, c, fast=5, slow=50)
    kept = first.equity[10:20]  # a view keeps the buffer alive
    snapshot = kept.copy()
    del first
    assert _engine.pooled_buffers()[0] == 1  # positions went back, equity is still in use
    second = rc.backtest(o * 1.01, c * 1.01, fast=5, slow=50)
    np.testing.assert_array_equal(kept, snapshot)
    assert not np.shares_memory(second.equity, kept)
    assert _engine.pooled_buffers()[0] == 0
    np.testing.assert_array_equal(second.equity, rc.backtest(o * 1.01, c * 1.01, fast=5, slow=50).equity)
    del second, kept
    assert _engine.pooled_buffers()[0] >= 2
    _engine.release_buffers()
    assert _engine.pooled_buffers() == (0, 0)


def test_vol_target_and_lots_match_oracle():
    o, h, l, c, v = random_walk(3000, seed=5)
    cfg = rc.make_config(strategy="sma", fast=5, slow=30, sizing="vol_target", target_vol=0.15, vol_window=25,
                         max_leverage=3, lot_size=1.0, direction="long_short", fee_bps=3)
    assert_same(rc.backtest(o, c, config=cfg), reference.backtest(o, c, cfg=cfg))


def test_no_look_ahead():
    o, h, l, c, v = random_walk(600, seed=9)
    base = rc.backtest(o, c, fast=5, slow=20, direction="long_short", fee_bps=5)
    k = 400
    o2, c2 = o.copy(), c.copy()
    c2[k + 1:] *= 1.7
    o2[k + 1:] *= 0.6
    alt = rc.backtest(o2, c2, fast=5, slow=20, direction="long_short", fee_bps=5)
    np.testing.assert_array_equal(base.equity[:k + 1], alt.equity[:k + 1])
    np.testing.assert_array_equal(base.positions[:k + 1], alt.positions[:k + 1])


def test_cumsum_is_sequential():
    # the oracle relies on np.cumsum adding left to right, like the C++ loop
    x = np.random.default_rng(0).normal(size=5000) * 1e3
    acc, seq = 0.0, []
    for value in x:
        acc += float(value)
        seq.append(acc)
    np.testing.assert_array_equal(np.cumsum(x), np.array(seq))


def test_frame_and_records():
    o, h, l, c, v = random_walk(500, seed=1)
    import pandas as pd

    df = pd.DataFrame({"open": o, "high": h, "low": l, "close": c, "volume": v})
    a = rc.backtest_frame(df, fast=5, slow=20)
    b = rc.backtest(o, c, high=h, low=l, volume=v, fast=5, slow=20, record_equity=False, record_positions=False,
                    record_trades=False)
    assert a.stats == b.stats
    assert b.equity is None and b.positions is None and b.trades is None
    assert a.trades.dtype == rc.TRADE_DTYPE


def test_zero_copy_inputs_are_not_modified():
    o, h, l, c, v = random_walk(300, seed=2)
    c_ro = c.copy()
    c_ro.flags.writeable = False
    rc.backtest(o, c_ro, fast=3, slow=9)
    np.testing.assert_array_equal(c_ro, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"close": [1.0, float("nan"), 2.0]}, "close must be finite and > 0, got nan at bar 1"),
        ({"close": [1.0, 2.0]}, "open has 3 values but close has 2"),
        ({"close": [1.0, -2.0, 2.0]}, "close must be finite and > 0"),
        ({"open": [], "close": []}, "empty"),
        ({"volume": [1.0, -1.0, 1.0]}, "volume must be finite and >= 0"),
        ({"fee_bps": -1.0}, "fee_bps"),
        ({"fraction": -0.5}, "fraction"),
        ({"fast": 5, "slow": 5}, "slow must be > fast"),
        ({"strategy": "martingale"}, "unknown strategy"),
        ({"strategy": "target"}, "needs a target series"),
        ({"target": [0.0, float("inf"), 0.0]}, "target is not finite"),
        ({"close": [[1.0, 2.0, 3.0]]}, "1-d"),
        ({"close": ["a", "b", "c"]}, "not a numeric array"),
        ({"bogus": 1}, "unknown parameter"),
    ],
)
def test_invalid_input_raises_clear_errors(kwargs, message):
    args = {"open": [1.0, 1.0, 1.0], "close": [1.0, 1.1, 1.2]}
    args.update(kwargs)
    with pytest.raises(rc.RiskCoreError, match=message.replace("(", r"\(")) as info:
        rc.backtest(args.pop("open"), args.pop("close"), **args)
    assert isinstance(info.value, ValueError)


def test_sweep_matches_single_runs_and_uses_threads():
    data = {name: dict(zip(("open", "high", "low", "close", "volume"), random_walk(2000, seed=s)))
            for s, name in enumerate(["A", "B", "C"])}
    params = [(f, s) for f in (3, 5, 8) for s in (20, 40)]
    res1 = rc.sweep(data, params, fee_bps=2, threads=1)
    res2 = rc.sweep(data, params, fee_bps=2, threads=2)
    assert res1.symbols == ("A", "B", "C")
    for name in rc.STAT_FIELDS:
        np.testing.assert_array_equal(res1.stats[name], res2.stats[name])
    for i, sym in enumerate(res1.symbols):
        for j, (f, s) in enumerate(params):
            single = rc.backtest(data[sym]["open"], data[sym]["close"], high=data[sym]["high"],
                                 low=data[sym]["low"], fast=f, slow=s, fee_bps=2)
            assert res1.stats["final_equity"][i, j] == single.stats.final_equity
            assert res1.stats["num_trades"][i, j] == single.stats.num_trades
    best = res1.best("sharpe")
    assert len(best) == 3 and best[0][0] == "A"
    assert len(res1.to_frame()) == 18


def test_sweep_momentum_lookbacks_and_errors():
    o, h, l, c, v = random_walk(800, seed=4)
    res = rc.sweep([{"open": o, "close": c}], [5, 10, 20], strategy="momentum")
    assert res.stats["sharpe"].shape == (1, 3)
    with pytest.raises(rc.RiskCoreError, match="slow must be > fast"):
        rc.sweep([{"open": o, "close": c}], [(10, 5)])
    with pytest.raises(rc.RiskCoreError, match="cannot be swept"):
        rc.sweep([{"open": o, "close": c}], [(1, 5)], strategy="target")
    with pytest.raises(rc.RiskCoreError, match="no 'close' column"):
        rc.sweep([{"open": o}], [(1, 5)])


def test_equity_stats_definitions():
    eq = np.array([100, 110, 99, 121, 120], float)
    got = rc.equity_stats(eq, initial_capital=100)
    want = reference.equity_stats(eq, 100)
    for name, value in want.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert got.max_drawdown == pytest.approx(0.1)
    assert got.max_drawdown_duration == 1
