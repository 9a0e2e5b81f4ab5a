"""Decision cost of the learned eviction policy: seconds spent choosing victims per eviction.

Replays a 200k-request synthetic trace (the `mixed` workload, seed 3 by default: a development seed)
through the simulator at 1%, 5% and 10% of its distinct keys under the shipped policy (or --model) and
reports decision_seconds / evictions: the proposal (LRU tail + uniform sample), the feature gather of
the candidates, the one batched MLP scoring, and the pre-scored victim queue that amortises a batch over
several evictions. Also the whole simulator's throughput (requests/s, bookkeeping included) and, for
scale, exact LRU's. Writes benchmarks/results/eviction_cost.json (--json prints that object).

    .venv/bin/python benchmarks/eviction_cost.py
    .venv/bin/python benchmarks/eviction_cost.py --model DIR --requests 500000
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "eviction_cost.json"
TARGET_US = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved policy directory (default: the shipped policy)")
    parser.add_argument("--workload", default="mixed")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from streams.memory.model import EvictionPolicy
    from streams.memory.simulator import CANDIDATES_DEFAULT, DEFAULT_QUEUE, simulate
    from streams.memory.synthetic import generate

    policy = EvictionPolicy.load(args.model) if args.model else EvictionPolicy.shipped()
    trace = generate(args.workload, args.requests, args.seed)
    runs = []
    for fraction in (0.01, 0.05, 0.1):
        capacity = max(1, round(fraction * trace.distinct()))
        started = time.perf_counter()
        result = simulate(trace, policy, capacity, use_bytes=False, count_from=0, seed=args.seed)
        wall = time.perf_counter() - started
        started = time.perf_counter()
        lru = simulate(trace, "lru", capacity, use_bytes=False, count_from=0)
        lru_wall = time.perf_counter() - started
        runs.append({"fraction": fraction, "capacity": capacity, "evictions": result.evictions,
                     "decision_seconds": round(result.decision_seconds, 4),
                     "decision_us_per_eviction": round(result.decision_seconds / max(result.evictions, 1) * 1e6, 2),
                     "simulator_requests_per_s": round(len(trace) / wall),
                     "lru_requests_per_s": round(len(trace) / lru_wall),
                     "miss_ratio": round(result.miss_ratio, 4), "lru_miss_ratio": round(lru.miss_ratio, 4)})
    worst = max(run["decision_us_per_eviction"] for run in runs)
    report = {"policy": policy.version, "trace": {"workload": args.workload, "requests": len(trace),
                                                  "distinct": trace.distinct(), "seed": args.seed},
              "candidates": CANDIDATES_DEFAULT, "queue": DEFAULT_QUEUE, "runs": runs,
              "worst_decision_us_per_eviction": worst, "target_us": TARGET_US, "within_target": worst <= TARGET_US,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_1m": round(os.getloadavg()[0], 2)}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return
    print(f"policy {policy.version}; {args.workload} seed {args.seed}, {len(trace)} requests, {trace.distinct()} keys; "
          f"{CANDIDATES_DEFAULT} candidates, queue {DEFAULT_QUEUE}")
    for run in runs:
        print(f"  {run['fraction']:>5.0%} ({run['capacity']:>6} keys): {run['decision_us_per_eviction']:6.2f} us/eviction "
              f"over {run['evictions']} evictions; simulator {run['simulator_requests_per_s']:,} req/s "
              f"(exact LRU {run['lru_requests_per_s']:,} req/s)")
    print(f"worst {worst:.2f} us per eviction (target <= {TARGET_US:.0f}): {'OK' if report['within_target'] else 'OVER'}; "
          f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
