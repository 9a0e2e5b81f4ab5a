"""Soak: the whole loop (the demo's nine workers under `algo supervise`'s Supervisor) fed replays of
bundled stocks in a loop for --minutes (30 by default; outside CI), on the real stack (start it
first: `algo stack up`).

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--symbols 4] [--bars-per-s 30] [--json]
        [--freeze technical --freeze-at 0.5]

Each pass replays one calendar year of --symbols bundled stocks (AAPL, GOOG, IBM, MSFT: the year
changes each pass) under symbols of that pass, paced at --bars-per-s in all (4 ticks a bar), then waits until every group has committed all it was sent. Every
10 s it samples each worker's resident memory (psutil) and the supervisor's liveness verdicts. At
--freeze-at of the run one worker (--freeze) gets SIGSTOP, the stall faust-streaming issue #175
describes (alive, consuming nothing): the supervisor must restart it (ALGO_STALL_AFTER_S, 60 s here)
and the lag alarm (500 messages for 20 s here) must rise meanwhile.

Memory counts as bounded for a worker when its resident set over the last fifth of the run is at
most 1.5 times (and 150 MiB above) its level over the second fifth (after the first passes warmed
it up). Writes benchmarks/results/soak.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from benchmarks.pipeline import git_commit  # noqa: E402
from ops.demo import DEMO_WORKERS, demo_groups, ensure_quant_model, groups_lag, start_from_the_end  # noqa: E402
from ops.provision import provision  # noqa: E402
from ops.supervisor import Supervisor  # noqa: E402
from streams.market.datasets import BarSeries, load_dataset  # noqa: E402
from streams.market.replay import replay  # noqa: E402
from streams.settings import get_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
SAMPLE_S = 10.0
STALL_AFTER_S = 60.0


def pass_series(stocks: list[BarSeries], number: int) -> list[BarSeries]:
    """One calendar year of every stock (the same year for all, a different one each pass, cycling
    through the years they all cover) under this pass's symbols."""
    first, last = max(s.dates[0] for s in stocks), min(s.dates[-1] for s in stocks)
    year = np.timedelta64(365, "D")
    years = max(1, int((last - first) // year))
    begin = first + (number % years) * year
    out = []
    for stock in stocks:
        keep = (stock.dates >= begin) & (stock.dates < begin + year)
        out.append(BarSeries(f"P{number}{stock.symbol}"[:16], stock.dates[keep], stock.open[keep], stock.high[keep],
                             stock.low[keep], stock.close[keep], stock.volume[keep]))
    return out


def rss_mib(pid: int) -> float | None:
    try:
        process = psutil.Process(pid)
        return (process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))) / 2**20
    except psutil.Error:
        return None


def fifth(samples: list[tuple[float, float]], index: int, total_s: float) -> float | None:
    """The median of the samples taken in the index-th fifth (0-4) of the run."""
    inside = [v for t, v in samples if index * total_s / 5 <= t < (index + 1) * total_s / 5]
    return round(statistics.median(inside), 1) if inside else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--bars-per-s", type=float, default=30.0)
    parser.add_argument("--freeze", choices=DEMO_WORKERS, default="technical")
    parser.add_argument("--freeze-at", type=float, default=0.5, help="fraction of the run (0 disables)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    # a stopped soak (timeout, kill) still stops its workers: they run in sessions of their own
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = get_settings()
    provision(base, progress=lambda _: None)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    model = ensure_quant_model(base, say)
    run = uuid.uuid4().hex[:6]
    account = f"soak-{run}"
    env = {"ALGO_APP_ID": f"{base.app_id}-{account}", "QUANT_MODEL_NAMESPACE": base.model_namespace,
           "RISK_ACCOUNT": account, "ALGO_OFFSET_RESET": "latest", "ALGO_STALL_AFTER_S": str(STALL_AFTER_S)}
    settings = dataclasses.replace(base, app_id=env["ALGO_APP_ID"], stall_after_s=STALL_AFTER_S,
                                   lag_alarm_after_s=20.0, lag_alarm_messages=500)
    start_from_the_end(settings)
    # the dataset's stocks with two years or more (FB's 196 bars would shrink the common window to months)
    stocks = [s for s in load_dataset("stocks") if len(s) >= 500][: args.symbols]
    # 86,400x real time is a calendar day a second per symbol: trading days are 252 of 365
    speed = args.bars_per_s / len(stocks) * 86_400 * 365 / 252
    supervisor = Supervisor(settings, list(DEMO_WORKERS), settings.run_dir / "soak" / run, env=env, check_s=5.0,
                            progress=say)
    memory: dict[str, list[tuple[float, float]]] = {name: [] for name in DEMO_WORKERS}
    alarms: dict[str, float] = {}
    stop = threading.Event()
    total_s = args.minutes * 60
    begun = time.monotonic()
    frozen: dict[str, float] = {}

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            at = time.monotonic() - begun
            for name, pid in supervisor.pids().items():
                value = rss_mib(pid)
                if value is not None:
                    memory[name].append((at, value))
                raised = supervisor.metrics.registry.get_sample_value("algo_consumer_lag_alarm", {"worker": name})
                if raised:
                    alarms.setdefault(name, at)
            if args.freeze_at and not frozen and at >= args.freeze_at * total_s:
                pid = supervisor.pids().get(args.freeze)
                if pid:
                    os.kill(pid, signal.SIGSTOP)
                    frozen[args.freeze] = at
                    say(f"soak: {args.freeze} (pid {pid}) frozen with SIGSTOP at {at:.0f} s")

    sampler = threading.Thread(target=sample, daemon=True)
    passes, ticks, drain_s = 0, 0, []
    supervisor.start()
    try:
        sampler.start()
        while time.monotonic() - begun < total_s:
            series = pass_series(stocks, passes)
            report = replay(settings, series, f"soak:{run}", speed=speed, show_progress=False)
            ticks += report.ticks
            drained_at = time.monotonic()
            while groups_lag(settings, demo_groups(settings)) > 0 and time.monotonic() - begun < total_s + 600:
                time.sleep(1)
            drain_s.append(round(time.monotonic() - drained_at, 1))
            passes += 1
            say(f"soak: pass {passes} done at {time.monotonic() - begun:.0f} s ({ticks:,} ticks so far)")
    finally:
        stop.set()
        sampler.join(SAMPLE_S + 5)
        supervisor.stop()
    elapsed = time.monotonic() - begun
    workers = {}
    for name, samples in memory.items():
        warm, last = fifth(samples, 1, elapsed), fifth(samples, 4, elapsed)
        bounded = warm is not None and last is not None and (last <= 1.5 * warm or last - warm <= 150)
        workers[name] = {"rss_mib_first_fifth": fifth(samples, 0, elapsed), "rss_mib_second_fifth": warm,
                         "rss_mib_last_fifth": last, "rss_mib_max": round(max((v for _, v in samples), default=0), 1),
                         "samples": len(samples), "bounded": bounded}
    restarts = [{"worker": r.worker, "reason": r.reason, "at_s": round(r.at - (time.time() - elapsed), 1)}
                for r in supervisor.restarts]
    figures = {
        "benchmark": "soak", "commit": git_commit(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "benchmarks/soak.py " + " ".join(sys.argv[1:]), "minutes": round(elapsed / 60, 1),
        "symbols": len(stocks), "bars_per_s": args.bars_per_s, "quant_model": model, "passes": passes,
        "ticks": ticks, "ticks_per_s": round(ticks / elapsed, 1), "drain_s_per_pass": drain_s, "workers": workers, "all_bounded": all(
            w["bounded"] for w in workers.values()),
        "frozen": frozen, "restarts": restarts, "lag_alarm_first_raised_s": alarms,
        "stall_after_s": STALL_AFTER_S,
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    if args.json:
        print(json.dumps(figures))
    else:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
