"""`algo memory evaluate`: the learned policy beside libCacheSim's classical baselines and Belady, on
one trace, honestly split.

The policy trains on requests [0, split) only (split = floor(n * train_fraction), by time). Every
policy, the agent and the baselines alike, then replays the WHOLE trace from an empty cache and is
scored on requests [split, n) only: all see the same warm-up (the training part) and the same
scored requests. Capacities are fractions of the trace's distinct keys (objects), or with
use_bytes of its distinct bytes (the sum of each key's largest size). Miss ratios count requests;
with use_bytes the byte miss ratios are reported too. gap_closed, best_classical and
agent_beats_best_classical compare request miss ratios."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from streams.errors import DataError
from streams.memory.trace import Trace, read_trace

DEFAULT_SIZES = (0.01, 0.05, 0.1)
DEFAULT_TRAIN_FRACTION = 0.5
DEFAULT_RL_TIMESTEPS = 20_000
CLASSICAL = ("LRU", "LFU", "ARC", "LIRS", "WTinyLFU", "SIEVE", "S3-FIFO")
ORDER = ("agent", *CLASSICAL, "Belady")
GAP_POLICIES = tuple(name for name in ORDER if name not in ("LRU", "Belady"))

Progress = Callable[[str], None]
# train_policy(trace, end, capacities, *, use_bytes, seed, rl_timesteps, progress) -> (policy, report)
Trainer = Callable[..., tuple]


def parse_sizes(text: str) -> list[float]:
    try:
        sizes = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DataError(f"--sizes must be comma-separated fractions such as 0.01,0.05,0.1, got {text!r}") from None
    if not sizes:
        raise DataError("--sizes names no cache size")
    bad = [size for size in sizes if not 0.0 < size < 1.0]
    if bad:
        raise DataError(f"--sizes must be fractions in (0, 1), got {', '.join(map(str, bad))}")
    return sizes


def capacities_for(trace: Trace, sizes: Sequence[float], *, use_bytes: bool) -> list[int]:
    if use_bytes:
        largest = np.zeros(trace.distinct(), dtype=np.int64)
        np.maximum.at(largest, trace.ids, trace.byte_sizes())
        total = int(largest.sum())
        return [max(1, round(size * total)) for size in sizes]
    return [max(1, round(size * trace.distinct())) for size in sizes]


def gap_closed(lru: float, belady: float, ratio: float | None) -> float | None:
    """Share of the LRU-to-Belady gap a policy closes (negative: worse than LRU); None when LRU
    equals Belady or the policy was not run."""
    if ratio is None or lru == belady:
        return None
    return (lru - ratio) / (lru - belady)


def evaluate(trace_path: str | Path, *, sizes: Sequence[float] = DEFAULT_SIZES,
             train_fraction: float = DEFAULT_TRAIN_FRACTION, use_bytes: bool = False, seed: int = 0,
             rl_timesteps: int = DEFAULT_RL_TIMESTEPS, progress: Progress | None = None,
             trainer: Trainer | None = None) -> dict:
    """The evaluation report (the `--json` object)."""
    from streams.memory.baselines import baseline_results, belady_variant
    from streams.memory.simulator import simulate

    say = progress or (lambda message: None)
    sizes = list(sizes)
    bad = [size for size in sizes if not 0.0 < size < 1.0]
    if not sizes or bad:
        raise DataError(f"cache sizes must be fractions in (0, 1), got {', '.join(map(str, bad or sizes)) or 'none'}")
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"--train-fraction must be in (0, 1), got {train_fraction}")
    if rl_timesteps < 0:
        raise DataError(f"--rl-timesteps must be >= 0, got {rl_timesteps}")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    trace = read_trace(trace_path)
    seconds["read"] = time.perf_counter() - started
    if len(trace) == 0:
        raise DataError(f"{trace_path}: the trace has no requests")
    split = trace.split_index(train_fraction)
    if split < 1 or split >= len(trace):
        raise DataError(f"{trace_path}: {len(trace)} requests are too few to split at {train_fraction} "
                        "(both the training and the scored part need requests)")
    capacities = capacities_for(trace, sizes, use_bytes=use_bytes)
    say(f"{len(trace)} requests, {trace.distinct()} distinct keys; training on the first {split}, "
        f"capacities {capacities} ({'bytes' if use_bytes else 'objects'})")

    if trainer is None:
        from streams.memory.train import train_policy as trainer
    phase = time.perf_counter()
    policy, training = trainer(trace, split, sorted(set(capacities)), use_bytes=use_bytes, seed=seed,
                               rl_timesteps=rl_timesteps, progress=say)
    seconds["train"] = time.perf_counter() - phase

    phase = time.perf_counter()
    baselines = baseline_results(trace, split, sorted(set(capacities)), use_bytes=use_bytes, progress=say)
    seconds["baselines"] = time.perf_counter() - phase

    phase = time.perf_counter()
    agent_runs = {}
    for capacity in sorted(set(capacities)):
        say(f"agent at capacity {capacity}")
        agent_runs[capacity] = simulate(trace, policy, capacity, use_bytes=use_bytes, count_from=split, seed=seed)
    seconds["agent"] = time.perf_counter() - phase

    rows = []
    for fraction, capacity in zip(sizes, capacities):
        agent = agent_runs[capacity]
        ratios = {"agent": agent.miss_ratio, **{name: baselines[capacity][name]["miss_ratio"] for name in ORDER[1:]}}
        row = {"fraction": fraction, "capacity": capacity, "miss_ratio": ratios,
               "gap_closed": {name: gap_closed(ratios["LRU"], ratios["Belady"], ratios[name]) for name in GAP_POLICIES}}
        if use_bytes:
            row["byte_miss_ratio"] = {"agent": agent.byte_miss_ratio,
                                      **{name: baselines[capacity][name]["byte_miss_ratio"] for name in ORDER[1:]}}
        not_run = {name: baselines[capacity][name]["skipped"] for name in ORDER[1:]
                   if "skipped" in baselines[capacity][name]}
        if not_run:
            row["not_run"] = not_run
        best = min((name for name in CLASSICAL if ratios[name] is not None), key=lambda name: ratios[name])
        row["best_classical"] = best
        row["agent_beats_best_classical"] = bool(ratios["agent"] < ratios[best])
        rows.append(row)

    decision_us = {str(capacity): (run.decision_seconds / run.evictions * 1e6 if run.evictions else None)
                   for capacity, run in agent_runs.items()}
    seconds["total"] = time.perf_counter() - started
    return {
        "trace": str(trace_path), "requests": len(trace), "distinct": trace.distinct(),
        "train_fraction": train_fraction, "train_requests": split, "scored_requests": len(trace) - split,
        "unit": "bytes" if use_bytes else "objects", "sizes": rows,
        "policy": {"version": policy.version, "training": training,
                   "decision_us_per_eviction": decision_us},
        "baselines": {name: ("libcachesim." + belady_variant(use_bytes) if name == "Belady"
                             else baselines[capacities[0]][name]["implementation"]) for name in ORDER[1:]},
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
    }


def format_tables(report: dict) -> list[str]:
    """Plain-text tables, one per size (the CLI renders the same rows with rich when it can)."""
    lines = []
    for row in report["sizes"]:
        lines.append(f"cache {row['fraction']:g} of {report['unit']} = {row['capacity']}  "
                     f"(best classical {row['best_classical']}; agent beats it: "
                     f"{'yes' if row['agent_beats_best_classical'] else 'no'})")
        header = f"  {'policy':<10}{'miss ratio':>12}" + (f"{'byte miss':>12}" if "byte_miss_ratio" in row else "") \
            + f"{'gap closed':>12}"
        lines.append(header)
        for name, cells in table_rows(row):
            lines.append(f"  {name:<10}" + "".join(f"{cell:>12}" for cell in cells))
    return lines


def table_rows(row: dict) -> list[tuple[str, list[str]]]:
    out = []
    for name in ORDER:
        cells = [_ratio(row["miss_ratio"][name])]
        if "byte_miss_ratio" in row:
            cells.append(_ratio(row["byte_miss_ratio"][name]))
        gap = row["gap_closed"].get(name)
        cells.append("-" if name in ("LRU", "Belady") else ("n/a" if gap is None else f"{gap:+.1%}"))
        out.append((name, cells))
    return out


def _ratio(value: float | None) -> str:
    return "not run" if value is None else f"{value:.4f}"


def default_plot_path(trace_path: str | Path) -> Path:
    path = Path(trace_path)
    return path.with_name(path.stem + ".mrc.png")


def write_plot(report: dict, path: str | Path) -> Path:
    """The miss-ratio curve: miss ratio against cache size, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(report["sizes"], key=lambda row: row["fraction"])
    fractions = [row["fraction"] for row in rows]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name in ORDER:
        style = {"agent": dict(color="black", linewidth=2.5, marker="o"),
                 "Belady": dict(color="grey", linestyle="--", marker=".")}.get(name, dict(marker="."))
        values = [np.nan if row["miss_ratio"][name] is None else row["miss_ratio"][name] for row in rows]
        axis.plot(fractions, values, label=name, **style)
    if len(fractions) > 1 and max(fractions) / min(fractions) >= 5:
        axis.set_xscale("log")
    axis.set_xlabel(f"cache size (fraction of distinct {report['unit']})")
    axis.set_ylabel(f"miss ratio on the scored {report['scored_requests']} requests")
    axis.set_title(f"{Path(report['trace']).name}: trained on the first {report['train_fraction']:g}")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
