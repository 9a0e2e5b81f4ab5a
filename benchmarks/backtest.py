"""Backtest benchmark: risk_core vs vectorbt vs backtesting.py on the same data and rules.

    bash benchmarks/run.sh [--repeat N]   # table + benchmarks/results/backtest.{json,md}
    bash benchmarks/run.sh --json         # the same, and one JSON object on stdout

Data: synthetic one-minute bars, geometric Brownian motion from numpy default_rng(20240601):
drift 7%/year, volatility 20%/year (252 days x 390 minutes), open = previous close times a small
gap (a quarter of a bar's volatility), high/low around open and close. 1,000,000 bars are about
ten years of minutes. Rules: SMA(50)/SMA(200) crossover, long-only, all-in, fee 1 bp of the
traded notional per fill, no slippage; the signal of bar t (its close) fills at bar t+1's open.

Timings are the median (and best) of --repeat calls through each library's Python API, after a
warm-up call (vectorbt's numba code compiled). risk_core is timed three ways: full output
(per-bar equity and positions, trade list, stats), trades + stats (no per-bar arrays: the work
vectorbt's timed call does, the figure compared with it), and stats only. Correctness: the
trades and final equity of risk_core must equal vectorbt's on all 1,000,000 bars and
backtesting.py's on its slice (criteria in TOLERANCE); trades_match is computed, never assumed.
Timing lives here only, never in the tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no backtesting.py progress bar (read when tqdm is imported)

import numpy as np  # noqa: E402

import risk_core as rc  # noqa: E402
from risk_core import _engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240601
BARS_PER_YEAR = 252 * 390
DRIFT, VOL = 0.07, 0.20  # annual
FAST, SLOW, FEE_BPS, CAPITAL = 50, 200, 1.0, 100_000.0
BT_CAPITAL = 1e12  # backtesting.py trades whole units: at 1e12 one unit is ~1e-10 of a position
TOLERANCE = {
    "vectorbt": "identical entry and exit bars and trade count; final equity, entry/exit prices and sizes equal "
                "to 1e-9 relative (all 1,000,000 bars)",
    "backtesting_py": "identical entry and exit bars, identical whole-unit sizes, final equity equal to 1e-9 "
                      "relative (capital 1e12; risk_core with lot_size=1 like backtesting.py's whole units)",
    "sweep": "final equity of the first 50 pairs equal to vectorbt's to 1e-9 relative",
}
REL = 1e-9


def minute_bars(n: int, seed: int = SEED):
    """open, high, low, close, volume of n one-minute bars (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sigma = VOL / np.sqrt(BARS_PER_YEAR)
    mu = DRIFT / BARS_PER_YEAR - 0.5 * sigma**2
    close = 100.0 * np.exp(np.cumsum(rng.normal(mu, sigma, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, sigma / 4, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2, n)))
    volume = rng.uniform(1e3, 1e5, n).round()
    return open_, high, low, close, volume


def timeit(fn, repeat: int) -> tuple[float, float, object]:
    """(median ms, best ms, last result) of `repeat` calls after one warm-up call. The previous
    result is alive while the next call runs, as in a loop that keeps its last answer."""
    out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times), out


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ---- risk_core ------------------------------------------------------------------------------------

def rc_run(o, c, **kw):
    kw.setdefault("initial_capital", CAPITAL)
    return rc.backtest(o, c, strategy="sma", fast=FAST, slow=SLOW, fee_bps=FEE_BPS, direction="long", **kw)


# ---- vectorbt ---------------------------------------------------------------------------------------

def vbt_portfolio(o, c, fast=FAST, slow=SLOW):
    """SMA cross in vectorbt with risk_core's semantics: decided on bar t's close (NaN warm-up
    compares False: flat), filled at bar t+1's open, all-in (size=inf spends cash / (1 + fee)),
    fee on notional. fast/slow may be lists (one column per pair)."""
    import pandas as pd
    import vectorbt as vbt

    close = pd.Series(c)
    fast_ma = vbt.MA.run(close, fast).ma.to_numpy()
    slow_ma = vbt.MA.run(close, slow).ma.to_numpy()
    long_ = fast_ma > slow_ma
    enter = np.zeros_like(long_)
    leave = np.zeros_like(long_)
    enter[1:] = long_[:-1]
    leave[1:] = ~long_[:-1]
    price = pd.Series(o) if long_.ndim == 1 else pd.DataFrame(np.repeat(o[:, None], long_.shape[1], axis=1))
    return vbt.Portfolio.from_signals(close, entries=enter, exits=leave, price=price, fees=FEE_BPS / 1e4,
                                      init_cash=CAPITAL, size=np.inf, freq="1min")


def vbt_run(o, c):
    """The timed vectorbt work: signals, simulation, trade records and final value (the outputs
    of risk_core's trades + stats run)."""
    pf = vbt_portfolio(o, c)
    return pf, pf.trades.records_arr, float(pf.final_value())


def compare_vbt(res: rc.BacktestResult, records, final_value: float) -> dict:
    ours = res.trades
    n = len(records)
    same_count = n == len(ours)
    entries = same_count and np.array_equal(records["entry_idx"], ours["entry_bar"])
    vbt_closed = records["status"] == 1
    exits = entries and np.array_equal(vbt_closed, ours["closed"] == 1) and np.array_equal(
        records["exit_idx"][vbt_closed], ours["exit_bar"][vbt_closed])
    out = {"trades_risk_core": int(len(ours)), "trades_vectorbt": int(n), "entries_equal": bool(entries),
           "exits_equal": bool(exits), "final_equity_risk_core": res.stats.final_equity,
           "final_equity_vectorbt": final_value,
           "final_equity_rel_diff": abs(final_value - res.stats.final_equity) / abs(final_value)}
    if entries:
        out["entry_price_max_rel_diff"] = rel_diff(ours["entry_price"], records["entry_price"])
        out["exit_price_max_rel_diff"] = rel_diff(ours["exit_price"][vbt_closed], records["exit_price"][vbt_closed])
        out["size_max_rel_diff"] = rel_diff(ours["quantity"], records["size"])
    out["match"] = bool(entries and exits and out["final_equity_rel_diff"] <= REL
                        and out["entry_price_max_rel_diff"] <= REL and out["exit_price_max_rel_diff"] <= REL
                        and out["size_max_rel_diff"] <= REL)
    return out


# ---- backtesting.py -------------------------------------------------------------------------------

def bt_slice_start(c) -> int:
    """backtesting.py makes its first decision one bar after its indicators' warm-up (on bar
    SLOW, not SLOW - 1). The slice starts at the first offset where the first decidable bar is
    flat anyway, so that both engines see the same decisions from the start."""
    import pandas as pd

    fast = pd.Series(c).rolling(FAST).mean().to_numpy()
    slow = pd.Series(c).rolling(SLOW).mean().to_numpy()
    s = 0
    while not fast[s + SLOW - 1] <= slow[s + SLOW - 1]:
        s += 1
    return s


def bt_run(o, h, l, c, v):
    import pandas as pd
    from backtesting import Backtest, Strategy

    def sma(x, n):
        return pd.Series(x).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy()  # all the equity, whole units, commission included
            elif self.position:
                self.position.close()

    index = pd.date_range("2000-01-03", periods=len(c), freq="min")
    df = pd.DataFrame({"Open": o, "High": h, "Low": l, "Close": c, "Volume": v}, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(df, SmaCross, cash=BT_CAPITAL, commission=FEE_BPS / 1e4, trade_on_close=False,
                      exclusive_orders=False, finalize_trades=False)
        return bt.run()


def compare_bt(res: rc.BacktestResult, stats) -> dict:
    t = stats["_trades"]
    ours = res.trades
    n = len(t)  # backtesting.py lists closed trades only (finalize_trades=False)
    closed = int(np.sum(ours["closed"] == 1))
    entries = n == closed and np.array_equal(t["EntryBar"].to_numpy(), ours["entry_bar"][:n])
    exits = entries and np.array_equal(t["ExitBar"].to_numpy(), ours["exit_bar"][:n])
    sizes = entries and np.array_equal(t["Size"].to_numpy().astype(float), ours["quantity"][:n])
    fe = float(stats["Equity Final [$]"])
    rel = abs(fe - res.stats.final_equity) / abs(fe)
    return {"closed_trades_backtesting_py": int(n), "closed_trades_risk_core": closed,
            "entries_equal": bool(entries), "exits_equal": bool(exits), "sizes_equal": bool(sizes),
            "final_equity_backtesting_py": fe, "final_equity_risk_core": res.stats.final_equity,
            "final_equity_rel_diff": rel, "match": bool(entries and exits and sizes and rel <= REL)}


# ---- the run --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="also print one JSON object on stdout")
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--sweep-bars", type=int, default=100_000)
    ap.add_argument("--bt-bars", type=int, default=50_000, help="bars of the backtesting.py slice")
    ap.add_argument("--repeat", type=int, default=30, help="timed calls of each risk_core figure")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    o, h, l, c, v = minute_bars(args.bars)
    out: dict = {
        "bars": args.bars,
        "data": f"one-minute GBM bars, numpy default_rng({SEED}), drift {DRIFT:.0%}/yr, vol {VOL:.0%}/yr, "
                f"price {c.min():.2f}..{c.max():.2f}, last {c[-1]:.2f}",
        "rules": f"SMA({FAST})/SMA({SLOW}) crossover, long-only, all-in, fee {FEE_BPS:g} bp per fill, no slippage, "
                 "signal on bar t's close, fill at bar t+1's open, capital 100,000",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "cpu": _cpu_model(), "risk_core_code_path": _engine.simd(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "repeat": args.repeat,
    }

    # 1. one backtest of 1,000,000 bars, one core, through the Python API
    none = dict(record_equity=False, record_positions=False)
    med, best, res = timeit(lambda: rc_run(o, c), args.repeat)
    out["ms_1m_bars_full_output"], out["ms_1m_bars_full_output_best"] = med, best
    med, best, _ = timeit(lambda: rc_run(o, c, **none), args.repeat)
    out["ms_1m_bars"], out["ms_1m_bars_best"] = med, best
    med, best, _ = timeit(lambda: rc_run(o, c, **none, record_trades=False), args.repeat)
    out["ms_1m_bars_stats_only"], out["ms_1m_bars_stats_only_best"] = med, best
    med, _, _ = timeit(lambda: rc.backtest(o, c, high=h, low=l, volume=v, fast=FAST, slow=SLOW, fee_bps=FEE_BPS,
                                           direction="long", initial_capital=CAPITAL), args.repeat)
    out["ms_1m_bars_full_output_ohlcv"] = med
    path = _engine.simd()
    try:
        _engine.simd(False)
        med, _, scalar = timeit(lambda: rc_run(o, c), max(3, args.repeat // 3))
    finally:
        _engine.simd(True)
    out["ms_1m_bars_full_output_scalar_code"] = med
    out["scalar_code_same_result"] = bool(scalar.stats == res.stats and np.array_equal(scalar.equity, res.equity))
    assert _engine.simd() == path
    out["trades_1m_bars"] = int(res.stats.num_trades)
    out["final_equity_1m_bars"] = res.stats.final_equity
    log(f"risk_core   {args.bars:,} bars ({path}), median (best) of {args.repeat}: trades+stats "
        f"{out['ms_1m_bars']:.3f} ms ({out['ms_1m_bars_best']:.3f}); full output {out['ms_1m_bars_full_output']:.3f} ms "
        f"({out['ms_1m_bars_full_output_best']:.3f}); stats only {out['ms_1m_bars_stats_only']:.3f} ms; "
        f"with high/low/volume checked {out['ms_1m_bars_full_output_ohlcv']:.3f} ms; scalar code "
        f"{out['ms_1m_bars_full_output_scalar_code']:.3f} ms; {res.stats.num_trades:,} trades, final equity "
        f"{res.stats.final_equity:,.2f}")

    # 2. vectorbt, same data and rules, after a warm-up call (numba compiled)
    vbt_run(o[:5000], c[:5000])
    vmed, vbest, (_, records, final_value) = timeit(lambda: vbt_run(o, c), 5)
    out["ms_vectorbt_1m_bars"], out["ms_vectorbt_1m_bars_best"] = vmed, vbest
    out["speedup_vs_vectorbt"] = vmed / out["ms_1m_bars"]
    out["speedup_vs_vectorbt_full_output"] = vmed / out["ms_1m_bars_full_output"]
    out["vectorbt_check"] = compare_vbt(res, records, final_value)
    log(f"vectorbt    {args.bars:,} bars: median {vmed:.1f} ms (signals, simulation, trades, final value) -> "
        f"risk_core {out['speedup_vs_vectorbt']:.1f}x faster ({out['speedup_vs_vectorbt_full_output']:.1f}x with its "
        f"full output); trades match: {out['vectorbt_check']['match']} ({out['vectorbt_check']['trades_vectorbt']:,} "
        f"trades, final equity rel diff {out['vectorbt_check']['final_equity_rel_diff']:.1e})")

    # 3. backtesting.py on a slice, scaled per bar; risk_core in whole units on the same slice
    s0 = bt_slice_start(c)
    s = slice(s0, s0 + args.bt_bars)
    t0 = time.perf_counter()
    stats = bt_run(o[s], h[s], l[s], c[s], v[s])
    bt_ms = (time.perf_counter() - t0) * 1e3
    ours = rc_run(o[s], c[s], lot_size=1.0, initial_capital=BT_CAPITAL)
    out["ms_backtesting_py_slice"] = bt_ms
    out["backtesting_py_bars"] = args.bt_bars
    out["backtesting_py_slice_start"] = s0
    out["ms_backtesting_py_1m_bars_scaled"] = bt_ms * args.bars / args.bt_bars
    out["speedup_vs_backtesting_py"] = out["ms_backtesting_py_1m_bars_scaled"] / out["ms_1m_bars_full_output"]
    out["backtesting_py_check"] = compare_bt(ours, stats)
    log(f"backtesting.py {args.bt_bars:,} bars: {bt_ms:,.0f} ms -> {out['ms_backtesting_py_1m_bars_scaled'] / 1e3:.1f} s "
        f"per 1M bars; risk_core (full output) {out['speedup_vs_backtesting_py']:,.0f}x faster; trades match: "
        f"{out['backtesting_py_check']['match']} ({out['backtesting_py_check']['closed_trades_backtesting_py']} closed "
        f"trades, final equity rel diff {out['backtesting_py_check']['final_equity_rel_diff']:.1e})")

    # 4. sweep: 1,000 (fast, slow) pairs over 100,000 bars, both cores vs one
    pairs = [(f, sl) for f in range(5, 55, 5) for sl in range(60, 260, 2)]
    assert len(pairs) == 1000
    so, sc = o[: args.sweep_bars], c[: args.sweep_bars]
    sym = {"GBM": {"open": so, "close": sc}}
    kw = dict(fee_bps=FEE_BPS, initial_capital=CAPITAL, direction="long")
    smed, sbest, sres = timeit(lambda: rc.sweep(sym, pairs, threads=0, **kw), 5)
    smed1, sbest1, sres1 = timeit(lambda: rc.sweep(sym, pairs, threads=1, **kw), 5)
    out["ms_sweep"], out["ms_sweep_best"] = smed, sbest
    out["ms_sweep_one_thread"], out["ms_sweep_one_thread_best"] = smed1, sbest1
    out["sweep_threads"] = os.cpu_count()
    out["sweep_parallel_speedup"] = smed1 / smed
    out["sweep_same_result_on_one_thread"] = bool(np.array_equal(sres.stats["final_equity"], sres1.stats["final_equity"]))
    sub = pairs[:50]
    vbt_portfolio(so[:5000], sc[:5000], [p[0] for p in sub[:2]], [p[1] for p in sub[:2]])
    vs_ms, _, pf = timeit(lambda: vbt_portfolio(so, sc, [p[0] for p in sub], [p[1] for p in sub]), 1)
    vfe = pf.final_value().to_numpy()
    out["ms_vectorbt_sweep_scaled"] = vs_ms * len(pairs) / len(sub)
    out["sweep_speedup_vs_vectorbt"] = out["ms_vectorbt_sweep_scaled"] / smed
    rel = rel_diff(sres.stats["final_equity"][0, : len(sub)], vfe)
    out["sweep_check"] = {"pairs_compared": len(sub), "final_equity_max_rel_diff": rel, "match": bool(rel <= REL)}
    log(f"sweep {len(pairs):,} pairs x {args.sweep_bars:,} bars: {smed:.1f} ms on {os.cpu_count()} threads, "
        f"{smed1:.1f} ms on one (x{smed1 / smed:.2f}); vectorbt ~{out['ms_vectorbt_sweep_scaled']:,.0f} ms "
        f"(50 pairs, scaled) -> {out['sweep_speedup_vs_vectorbt']:.0f}x; final equity vs vectorbt rel diff {rel:.1e}")

    # 5. pre-trade checks through Python
    engine = rc.RiskEngine(rc.RiskLimits(max_position_notional=1e6, max_gross_exposure=2.0, max_net_exposure=1.5,
                                         max_order_notional=2e5, max_orders_per_window=1000, max_daily_loss=0.05,
                                         max_drawdown=0.2, max_var=0.05, lot_size=1.0), 1_000_000.0)
    for i, name in enumerate(["AAPL", "MSFT", "IBM", "GOOG", "FB"]):
        engine.set_position(name, 100 * (i + 1), 100.0 + 10 * i, 0.02)
    engine.start_day()
    check = engine.check
    best_call = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(100_000):
            check("AAPL", 1, 500.0, 150.0, 1.0, 0.02)
        best_call = min(best_call, (time.perf_counter() - t) / 100_000)
    order = rc.Order("AAPL", "buy", 500.0, 150.0, 1.0, 0.02)
    state, limits = engine.state(), engine.limits
    t = time.perf_counter()
    for _ in range(20_000):
        rc.check_order(order, state, limits)
    per_call_pure = (time.perf_counter() - t) / 20_000
    out["pretrade_us_per_call"] = best_call * 1e6
    out["pretrade_checks_per_second"] = 1.0 / best_call
    out["pretrade_pure_us_per_call"] = per_call_pure * 1e6
    log(f"pre-trade check via RiskEngine.check: {best_call * 1e6:.2f} us/call = {1 / best_call:,.0f} checks/s "
        f"(best of 5 x 100,000); check_order(Order, Portfolio, RiskLimits): {per_call_pure * 1e6:.2f} us/call")

    out["trades_match"] = bool(out["vectorbt_check"]["match"] and out["backtesting_py_check"]["match"])
    out["tolerance"] = TOLERANCE
    out["goals"] = {
        "under_2ms_1m_bars": out["ms_1m_bars"] < 2.0,
        "under_2ms_1m_bars_full_output": out["ms_1m_bars_full_output"] < 2.0,
        "at_least_5x_vectorbt": out["speedup_vs_vectorbt"] >= 5,
        "sweep_uses_both_cores": out["sweep_parallel_speedup"] > 1.3,
    }
    out["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    log(f"ratios: vs vectorbt {out['speedup_vs_vectorbt']:.1f}x, vs backtesting.py "
        f"{out['speedup_vs_backtesting_py']:,.0f}x, sweep on both cores x{out['sweep_parallel_speedup']:.2f}; "
        f"trades_match={out['trades_match']}; load average {out['machine']['load_average_at_start']} -> "
        f"{out['machine']['load_average_at_end']}")

    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "backtest.json").write_text(json.dumps(out, indent=2) + "\n")
        (RESULTS / "backtest.md").write_text(markdown(out))
    if args.json:
        print(json.dumps(out))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown(out: dict) -> str:
    rows = [
        ("ms_1m_bars (trades + stats, median; best)", f"{out['ms_1m_bars']:.3f}; {out['ms_1m_bars_best']:.3f}"),
        ("ms_1m_bars_full_output (+ per-bar equity and positions)",
         f"{out['ms_1m_bars_full_output']:.3f}; {out['ms_1m_bars_full_output_best']:.3f}"),
        ("ms_1m_bars_stats_only", f"{out['ms_1m_bars_stats_only']:.3f}; {out['ms_1m_bars_stats_only_best']:.3f}"),
        ("ms_1m_bars_full_output_ohlcv (high/low/volume checked too)", f"{out['ms_1m_bars_full_output_ohlcv']:.3f}"),
        ("ms_1m_bars_full_output_scalar_code (no AVX2)", f"{out['ms_1m_bars_full_output_scalar_code']:.3f}"),
        ("trades in 1M bars; final equity", f"{out['trades_1m_bars']:,}; {out['final_equity_1m_bars']:,.2f}"),
        ("ms_vectorbt_1m_bars", f"{out['ms_vectorbt_1m_bars']:.1f}"),
        ("speedup_vs_vectorbt (trades + stats; full output)",
         f"{out['speedup_vs_vectorbt']:.1f}x; {out['speedup_vs_vectorbt_full_output']:.1f}x"),
        ("ms_backtesting_py_1m_bars_scaled", f"{out['ms_backtesting_py_1m_bars_scaled']:,.0f}"),
        ("speedup_vs_backtesting_py (full output)", f"{out['speedup_vs_backtesting_py']:,.0f}x"),
        ("ms_sweep (1,000 pairs x 100,000 bars, both cores)", f"{out['ms_sweep']:.1f}"),
        ("ms_sweep_one_thread", f"{out['ms_sweep_one_thread']:.1f}"),
        ("sweep_parallel_speedup", f"{out['sweep_parallel_speedup']:.2f}"),
        ("sweep_speedup_vs_vectorbt", f"{out['sweep_speedup_vs_vectorbt']:.0f}x"),
        ("pretrade_us_per_call; checks per second", f"{out['pretrade_us_per_call']:.2f}; "
                                                    f"{out['pretrade_checks_per_second']:,.0f}"),
        ("pretrade_pure_us_per_call (check_order with dataclasses)", f"{out['pretrade_pure_us_per_call']:.2f}"),
        ("trades_match (vectorbt on 1M bars; backtesting.py on its slice)",
         f"{out['trades_match']} ({out['vectorbt_check']['match']}; {out['backtesting_py_check']['match']})"),
        ("final equity rel diff vs vectorbt; vs backtesting.py",
         f"{out['vectorbt_check']['final_equity_rel_diff']:.1e}; "
         f"{out['backtesting_py_check']['final_equity_rel_diff']:.1e}"),
        ("load average at start; end", f"{out['machine']['load_average_at_start']}; "
                                       f"{out['machine']['load_average_at_end']}"),
    ]
    lines = [f"Data: {out['data']}.", f"Rules: {out['rules']}.",
             f"Machine: {out['machine']['cpu']}, {out['machine']['cpu_count']} cores, risk_core code path "
             f"{out['machine']['risk_core_code_path']}; times in ms, median of {out['repeat']} calls (best after ';').",
             "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
