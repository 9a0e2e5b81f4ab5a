"""Walk-forward, out-of-sample evaluation of the Quant policy against two baselines.

Splits (expanding window): the first `train_fraction` of the bars is the first training set; the
rest is cut into `folds` consecutive test windows. For fold k the policy is trained from scratch
on every bar before its test window and never sees a bar of it; it then trades the window from
flat. Every seed repeats all folds. Hyper-parameters are fixed before any test window is seen
(PPO_DEFAULTS, EnvConfig): nothing here is tuned on test data.

Each strategy trades each test window from flat, decisions at bar t's close filled at bar t+1's
open, priced by risk_core's backtester with the same fee and slippage:
  quant          the policy's short/flat/long targets (risk_core target strategy)
  buy_and_hold   long from the window's first open to its end
  sma_crossover  risk_core's own SMA(fast)/SMA(slow) strategy, long-only (warmed up on the bars
                 before the window, so it too starts trading at the window's first open)
The windows' equity curves are chained into one out-of-sample curve per strategy (and seed);
Sharpe, annualised return, max drawdown, turnover and fees come from that curve.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import risk_core as rc
from streams.market.datasets import BarSeries
from streams.market.periods import periods_per_year
from streams.errors import ModelError
from streams.quant.env import EnvConfig, MarketSeries
from streams.quant.features import FeatureSpec
from streams.quant.model import PPO_DEFAULTS, QuantPolicy, train_policy


@dataclass(frozen=True)
class Fold:
    index: int
    train_end: int   # training uses bars [0, train_end)
    test_start: int  # the first bar traded (filled at its open); test_start == train_end
    test_end: int    # exclusive


def walk_forward_splits(n: int, warmup: int, folds: int, train_fraction: float) -> list[Fold]:
    if folds < 1:
        raise ModelError(f"folds must be >= 1, got {folds}")
    if not 0.1 <= train_fraction <= 0.9:
        raise ModelError(f"train fraction must be in [0.1, 0.9], got {train_fraction}")
    first = int(n * train_fraction)
    test_bars = (n - first) // folds
    if first - warmup < 50 or test_bars < 20:
        raise ModelError(f"{n} bars are too few for {folds} walk-forward folds: the first training set needs "
                         f"{warmup + 50} bars (warm-up {warmup} + 50) and each test window 20")
    edges = [first + k * test_bars for k in range(folds)] + [n]
    return [Fold(k, edges[k], edges[k], edges[k + 1]) for k in range(folds)]


@dataclass(frozen=True)
class EvaluationConfig:
    seeds: int = 5
    folds: int = 4
    train_fraction: float = 0.5
    timesteps: int = 50_000
    sma_fast: int = 50
    sma_slow: int = 200
    first_seed: int = 0
    periods_per_year: float | None = None  # None: inferred from the bars (streams.market.periods)


STAT_NAMES = ("sharpe", "annualized_return", "max_drawdown", "turnover_per_year", "total_return", "fees", "fills",
              "exposure")


def _window_backtest(series: MarketSeries, start: int, end: int, config: EnvConfig, targets: np.ndarray,
                     periods_per_year: float):
    """risk_core on bars [start - 1, end): the decision bar before the window, then the window."""
    return rc.backtest(series.open[start - 1:end], series.close[start - 1:end], target=targets,
                       periods_per_year=periods_per_year, **config.backtest_params())


def _sma_window(series: MarketSeries, start: int, end: int, config: EnvConfig, fast: int, slow: int,
                periods_per_year: float):
    """risk_core's SMA strategy with `slow - 1` bars of warm-up before the decision bar; flat through them."""
    lead = min(slow - 1, start - 1)
    begin = start - 1 - lead
    params = {**config.backtest_params(), "direction": "long", "periods_per_year": periods_per_year}
    result = rc.backtest(series.open[begin:end], series.close[begin:end], strategy="sma", fast=fast, slow=slow,
                         **params)
    return result.equity[lead:], result.positions[lead:], result.stats


@dataclass
class Curve:
    """One strategy's out-of-sample equity, window after window (each window starts at capital)."""

    capital: float
    years: float
    periods_per_year: float
    returns: list[np.ndarray] = field(default_factory=list)
    traded: float = 0.0
    fees: float = 0.0
    fills: int = 0
    held: int = 0
    bars: int = 0

    def add(self, equity: np.ndarray, positions: np.ndarray, stats) -> None:
        self.returns.append(equity[1:] / equity[:-1] - 1.0)
        self.traded += stats.turnover * self.capital
        self.fees += stats.total_fees
        self.fills += stats.num_fills
        self.held += int(np.count_nonzero(positions[1:]))
        self.bars += len(equity) - 1

    def equity(self) -> np.ndarray:
        growth = np.concatenate([[1.0], 1.0 + np.concatenate(self.returns)])
        return self.capital * np.cumprod(growth)

    def figures(self) -> dict:
        equity = self.equity()
        stats = rc.equity_stats(equity, self.capital, self.periods_per_year)
        return {"sharpe": stats.sharpe, "annualized_return": stats.annualized_return,
                "max_drawdown": stats.max_drawdown, "turnover_per_year": self.traded / self.capital / self.years,
                "total_return": stats.total_return, "fees": self.fees, "fills": self.fills,
                "exposure": self.held / self.bars if self.bars else 0.0}


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()),
            "median": float(np.median(a)), "max": float(a.max())}


def _stamps(dates: np.ndarray) -> list[str]:
    """ISO dates for daily bars (all at midnight), else to the second (intraday curves stay apart)."""
    daily = bool((dates == dates.astype("datetime64[D]")).all())
    return [str(d) for d in dates.astype("datetime64[D]" if daily else "datetime64[s]")]


def evaluate(bars: BarSeries, *, spec: FeatureSpec = FeatureSpec(), env_config: EnvConfig = EnvConfig(),
             config: EvaluationConfig = EvaluationConfig(), source: str = "",
             progress: Callable[[str], None] = lambda _: None) -> dict:
    """Every seed over every fold; returns the report (plain data, JSON-ready, curves included)."""
    if config.seeds < 1:
        raise ModelError(f"seeds must be >= 1, got {config.seeds}")
    series = MarketSeries.build(bars.symbol, bars.open, bars.close, spec)
    folds = walk_forward_splits(len(series), spec.warmup, config.folds, config.train_fraction)
    test_bars = folds[-1].test_end - folds[0].test_start
    periods = periods_per_year(bars.dates, config.periods_per_year)
    per_year = periods.per_year
    years = test_bars / per_year
    capital = env_config.initial_capital

    baselines = {"buy_and_hold": Curve(capital, years, per_year), "sma_crossover": Curve(capital, years, per_year)}
    for fold in folds:
        n = fold.test_end - fold.test_start + 1
        hold = _window_backtest(series, fold.test_start, fold.test_end, env_config, np.ones(n), per_year)
        baselines["buy_and_hold"].add(hold.equity, hold.positions, hold.stats)
        sma_equity, sma_positions, sma_stats = _sma_window(series, fold.test_start, fold.test_end, env_config,
                                                           config.sma_fast, config.sma_slow, per_year)
        baselines["sma_crossover"].add(sma_equity, sma_positions, sma_stats)

    runs = []
    started = time.perf_counter()
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        curve = Curve(capital, years, per_year)
        fold_figures = []
        for fold in folds:
            progress(f"seed {seed} fold {fold.index + 1}/{len(folds)}: train on bars [0, {fold.train_end}), "
                     f"test [{fold.test_start}, {fold.test_end})")
            train = MarketSeries(series.symbol, series.open[:fold.train_end], series.close[:fold.train_end],
                                 series.features[:fold.train_end])
            model = train_policy([train], spec, env_config, timesteps=config.timesteps, seed=seed)
            policy = QuantPolicy.from_model(model, spec, env_config, version=f"eval-seed{seed}-fold{fold.index}")
            signs, _ = policy.rollout(series.features, fold.test_start - 1, fold.test_end)
            result = _window_backtest(series, fold.test_start, fold.test_end, env_config, signs, per_year)
            curve.add(result.equity, result.positions, result.stats)
            fold_figures.append({"fold": fold.index, "sharpe": result.stats.sharpe,
                                 "total_return": result.stats.total_return, "max_drawdown": result.stats.max_drawdown,
                                 "fills": result.stats.num_fills})
        runs.append({"seed": seed, **curve.figures(), "folds": fold_figures, "equity": curve.equity()})

    bh_sharpe = baselines["buy_and_hold"].figures()["sharpe"]
    report = {
        "source": source, "symbol": bars.symbol, "bars": len(series),
        "data": {"start": str(bars.dates[0])[:10], "end": str(bars.dates[-1])[:10]},
        "out_of_sample": {"start": str(bars.dates[folds[0].test_start])[:10], "end": str(bars.dates[-1])[:10],
                          "bars": test_bars},
        **periods.as_dict(),
        "folds": [fold.__dict__ for fold in folds],
        "config": {**config.__dict__, "ppo": PPO_DEFAULTS, "features": spec.as_dict(), "env": env_config.as_dict()},
        "seeds": [{k: v for k, v in run.items() if k != "equity"} for run in runs],
        "distribution": {name: _summary([run[name] for run in runs]) for name in STAT_NAMES},
        "baselines": {name: curve.figures() for name, curve in baselines.items()},
        "seeds_beating_buy_and_hold_sharpe": sum(run["sharpe"] > bh_sharpe for run in runs),
        "train_seconds": round(time.perf_counter() - started, 1),
        "curves": {"dates": _stamps(bars.dates[folds[0].test_start - 1:]),
                   "seeds": {str(run["seed"]): run["equity"].tolist() for run in runs},
                   **{name: curve.equity().tolist() for name, curve in baselines.items()}},
    }
    return report


def write_outputs(report: dict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The results JSON (curves included) and an equity-curve chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / f"{stem}.json"
    curves = report["curves"]
    rounded = {**curves, "seeds": {k: [round(v, 2) for v in c] for k, c in curves["seeds"].items()},
               **{k: [round(v, 2) for v in curves[k]] for k in ("buy_and_hold", "sma_crossover")}}
    results.write_text(json.dumps({**report, "curves": rounded}, indent=1, default=float))
    chart = out_dir / f"{stem}.png"
    curves = report["curves"]
    dates = np.asarray(curves["dates"], dtype="datetime64[s]")
    fig, ax = plt.subplots(figsize=(11, 5.5))
    seed_curves = np.array(list(curves["seeds"].values()))
    for i, values in enumerate(seed_curves):
        ax.plot(dates, values, color="tab:blue", alpha=0.3, lw=0.8, label="PPO, each seed" if i == 0 else None)
    ax.plot(dates, np.median(seed_curves, axis=0), color="tab:blue", lw=2, label="PPO, median over seeds")
    ax.plot(dates, curves["buy_and_hold"], color="black", lw=1.5, label="buy and hold")
    ax.plot(dates, curves["sma_crossover"], color="tab:orange", lw=1.5, label="SMA crossover (risk_core)")
    for fold in report["folds"][1:]:
        ax.axvline(dates[fold["test_start"] - report["folds"][0]["test_start"]], color="grey", lw=0.5, ls=":")
    ax.set_yscale("log")
    ax.set_title(f"{report['symbol']} out of sample, walk-forward ({len(report['folds'])} folds), after costs")
    ax.set_ylabel("equity (log)")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(chart, dpi=110)
    plt.close(fig)
    return results, chart


def format_table(report: dict) -> list[str]:
    """Plain-text lines: per-seed figures, their distribution, the baselines."""
    def row(name, f):
        return (f"{name:<18}{f['sharpe']:>8.2f}{f['annualized_return'] * 100:>10.2f}%{f['max_drawdown'] * 100:>9.1f}%"
                f"{f['turnover_per_year']:>10.1f}{f['fees']:>11,.0f}")

    lines = [f"{report['symbol']} ({report['source']}): out of sample {report['out_of_sample']['start']} .. "
             f"{report['out_of_sample']['end']} ({report['out_of_sample']['bars']} bars, {len(report['folds'])} "
             f"walk-forward folds, {len(report['seeds'])} seeds, {report['config']['timesteps']:,} PPO steps per fold)",
             f"{'':<18}{'Sharpe':>8}{'ann.ret':>11}{'max DD':>10}{'turn/yr':>10}{'fees':>11}"]
    lines += [row(f"PPO seed {run['seed']}", run) for run in report["seeds"]]
    dist = report["distribution"]
    for stat in ("mean", "median", "min", "max"):
        lines.append(row(f"PPO {stat}", {name: dist[name][stat] for name in dist}))
    lines.append(f"{'PPO std':<18}{dist['sharpe']['std']:>8.2f}{dist['annualized_return']['std'] * 100:>10.2f}%")
    for name, figures in report["baselines"].items():
        lines.append(row(name, figures))
    lines.append(f"seeds with a Sharpe above buy-and-hold's: {report['seeds_beating_buy_and_hold_sharpe']} of "
                 f"{len(report['seeds'])}")
    lines.append(f"periods per year: {report['periods_per_year_basis']}")
    return lines
