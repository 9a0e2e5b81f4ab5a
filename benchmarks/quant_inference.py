"""Per-bar inference cost of the Quant agent on the CPU, without Kafka.

What the quant worker does for each bar, timed one bar at a time: advance the symbol's window
(streams.quant.vote.advance), compute the observation (streams.quant.features_of), run the PPO policy
(QuantPolicy.decide: torch forward pass + action probabilities) and build the AgentSignal
(streams.quant.vote.signal_record). Also the batched rollout the evaluation uses (bars/s).
Prints the figures and writes benchmarks/results/quant_inference.json (--json prints that object).

    .venv/bin/python benchmarks/quant_inference.py                  # trains a 2,048-step policy first
    .venv/bin/python benchmarks/quant_inference.py --model models/quant-ppo-...   # a saved model
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quant_inference.json"


def percentiles(samples_ns: list[int]) -> dict:
    us = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {"mean_us": round(float(us.mean()), 1), "p50_us": round(float(np.percentile(us, 50)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1), "max_us": round(float(us.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved model directory (default: train a small one)")
    parser.add_argument("--bars", type=int, default=5000, help="bars to score (default 5000, S&P 500 daily)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from streams.quant import model as qm
    from streams.market.datasets import load_bars
    from streams.quant.vote import advance, features_of, rationale, signal_record
    from streams.quant.env import EnvConfig, MarketSeries
    from streams.quant.features import FeatureSpec

    bars = load_bars("sp500", "SP500")
    if args.model:
        policy = qm.QuantPolicy.load(args.model)
    else:
        spec, config = FeatureSpec(), EnvConfig()
        series = MarketSeries.build("SP500", bars.open[:2500], bars.close[:2500], spec)
        model = qm.train_policy([series], spec, config, timesteps=2048, seed=0)
        policy = qm.QuantPolicy.from_model(model, spec, config)
    spec = policy.spec
    closes = bars.close[: args.bars]
    start = datetime(1999, 1, 4, tzinfo=timezone.utc)
    state, totals, feature_ns, policy_ns = None, [], [], []
    for i, close in enumerate(closes):
        ts = start + timedelta(days=i)
        bar = {"symbol": "SP500", "interval": "1d", "ts": ts}
        t0 = time.perf_counter_ns()
        state = advance(state, i * 86_400_000_000, float(close), spec)
        features = features_of(state, spec)
        t1 = time.perf_counter_ns()
        if features is None:
            continue
        sign, confidence, probabilities = policy.decide(features, state["position"])
        t2 = time.perf_counter_ns()
        state = {**state, "position": sign}
        signal_record(bar, policy.version, sign, confidence, rationale(policy.version, sign, probabilities,
                                                                       policy.positions))
        t3 = time.perf_counter_ns()
        totals.append(t3 - t0)
        feature_ns.append(t1 - t0)
        policy_ns.append(t2 - t1)

    series = MarketSeries.build("SP500", bars.open, bars.close, spec)
    first = series.first_decision_bar()
    t0 = time.perf_counter()
    policy.rollout(series.features, first, len(series))
    rollout_s = time.perf_counter() - t0

    result = {
        "benchmark": "quant_inference", "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "model": policy.version, "bars_scored": len(totals),
        "per_bar_total": percentiles(totals), "per_bar_features": percentiles(feature_ns),
        "per_bar_policy": percentiles(policy_ns),
        "bars_per_second_one_at_a_time": round(1e9 / float(np.mean(totals)), 0),
        "batched_rollout_bars_per_second": round((len(series) - first) / rollout_s, 0),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    for part in ("per_bar_total", "per_bar_features", "per_bar_policy"):
        f = result[part]
        print(f"{part:<18} mean {f['mean_us']:>7.1f} µs  p50 {f['p50_us']:>7.1f}  p99 {f['p99_us']:>7.1f}  "
              f"max {f['max_us']:>8.1f}")
    print(f"one bar at a time: {result['bars_per_second_one_at_a_time']:,.0f} bars/s; batched rollout: "
          f"{result['batched_rollout_bars_per_second']:,.0f} bars/s; written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
