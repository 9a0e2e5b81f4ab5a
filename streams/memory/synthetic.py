"""Documented synthetic cache workloads (deterministic per seed), for developing and evaluating
eviction policies when no recorded trace is at hand.

Common to all: every key gets one size, drawn when it first appears from a log-normal whose median
and sigma depend on its kind (SIZE_BY_KIND: e.g. bars ~8 KiB, embeddings ~1.5 KiB, backtests
~32 KiB). Times are seconds. Every random draw comes from numpy's default_rng seeded with the seed
(one child generator per concern), so a (workload, requests, seed) triple always gives the same trace.

`zipf-drift`: news-cycle popularity. A pool of POOL keys (max(200, requests/25)) is ranked; each
request picks rank r with probability proportional to r**-0.9 (truncated Zipf over the pool) and
asks for the key at that rank. Every requests/200 requests the ranking drifts: 2% of the pool's
keys are taken from the top tenth and moved to random places in the bottom half (hot keys cool
down), the bottom 2% retire, and as many brand-new keys enter at random places in the top tenth
(new keys appear hot). Independently, 15% of requests are one-hit wonders (a new key never asked
again). Keys are `embedding:n<id>` (70%) or `retrieval:<SYM>:z<id>` (30%); the volatility column is
the symbol's constant baseline volatility (0 for embeddings): here it carries no signal.
Inter-arrival times are exponential with mean 1 ms.

`volatility-bursts`: per-symbol attention follows volatility. 40 symbols with base weights
proportional to rank**-0.8. Time runs in 1 s steps; each symbol has a two-state regime (calm /
volatile, switching with probability 0.002 / 0.01 per step, so calm spells last ~500 s and bursts
~100 s) and a volatility = regime level (0.01 calm, 0.05 volatile) times log-normal noise (sigma
0.2). A symbol's request rate is proportional to base weight * (volatility / 0.01) ** 1.5, scaled
so the mean total is 20 requests per step; counts per step are Poisson, times uniform inside the
step. Each request is one of: `bars:<SYM>:<interval>` (35%; intervals 1m,5m,15m,1h,1d weighted
8:4:2:1:1), `decisions:<SYM>:<limit>` (20%; limits 20,50,100), `features:<SYM>:<agent>:<window>`
(20%; agents technical/quant, window = step // 300: a new feature window every 5 minutes) and
`retrieval:<SYM>:<minute>q<j>` (25%; minute = step // 60, j geometric with p = 0.3: the as-of
retrieval queries of the current minute). The volatility column is the symbol's volatility at that
step.

`backtest-scans`: the LRU-killer. A working set of HOT keys (max(50, requests/100)) of kinds
bars/decisions/positions with Zipf(0.8) popularity, interleaved with long sequential scans. A scan
starts with probability 1/400 per request when none runs; it walks L keys (L uniform in
[200, 2000]) `backtest:<SYM>:<hash>` in order, each request of the scan being the next key with
probability 0.6 (else a hot-set request). 10% of scans rerun one of the last 20 scans (same keys,
same order): those keys are read twice, the rest once. Inter-arrival times are exponential with
mean 1 ms; the volatility column is 0.

`mixed`: the three above with requests/3 each (child seeds), each stretched to the same time span
and merged by time: a keyspace where all three patterns compete for one cache."""
from __future__ import annotations

import hashlib
import os

import numpy as np

from streams.errors import DataError
from streams.memory.keys import cache_key, kind_of
from streams.memory.trace import Trace, trace_from_requests, write_trace

# kind -> (median bytes, log-normal sigma)
SIZE_BY_KIND: dict[str, tuple[float, float]] = {
    "bars": (8192, 0.5), "decisions": (2048, 0.4), "positions": (1024, 0.3), "backtest": (32768, 0.8),
    "retrieval": (4096, 0.5), "embedding": (1536, 0.05), "features": (16384, 0.6), "other": (4096, 1.0),
}
SYMBOLS = tuple(f"S{index:02d}" for index in range(40))
WORKLOADS = ("zipf-drift", "volatility-bursts", "backtest-scans", "mixed")


class _Requests:
    """Per-request columns, plus one log-normal size per key drawn at first sight."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.times: list[float] = []
        self.keys: list[str] = []
        self.volatility: list[float] = []
        self._rng = rng
        self._size: dict[str, int] = {}

    def add(self, time: float, key: str, volatility: float = 0.0) -> None:
        if key not in self._size:
            median, sigma = SIZE_BY_KIND[kind_of(key)]
            self._size[key] = max(1, int(round(median * float(np.exp(sigma * self._rng.standard_normal())))))
        self.times.append(time)
        self.keys.append(key)
        self.volatility.append(volatility)

    def sizes(self) -> list[int]:
        return [self._size[key] for key in self.keys]

    def trace(self) -> Trace:
        return trace_from_requests(self.times, self.keys, self.sizes(), self.volatility)


def _truncated_zipf_cdf(count: int, alpha: float) -> np.ndarray:
    weights = np.arange(1, count + 1, dtype=np.float64) ** -alpha
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def zipf_drift(requests: int, seed: int) -> Trace:
    rng = np.random.default_rng([seed, 1])
    out = _Requests(np.random.default_rng([seed, 2]))
    baseline_vol = {symbol: float(0.01 * np.exp(0.3 * rng.standard_normal())) for symbol in SYMBOLS}
    pool = max(200, requests // 25)
    cdf = _truncated_zipf_cdf(pool, 0.9)
    names: list[str] = []

    def new_key() -> int:
        ident = len(names)
        if rng.random() < 0.7:
            names.append(cache_key("embedding", f"n{ident}"))
        else:
            names.append(cache_key("retrieval", SYMBOLS[int(rng.integers(len(SYMBOLS)))], f"z{ident}"))
        return ident

    ranking = [new_key() for _ in range(pool)]
    epoch = max(1, requests // 200)
    moved = max(1, pool // 50)
    top, one_hit, time = max(moved, pool // 10), 0, 0.0
    for start in range(0, requests, epoch):
        count = min(epoch, requests - start)
        ranks = np.searchsorted(cdf, rng.random(count), side="right")
        wonders = rng.random(count) < 0.15
        gaps = rng.exponential(0.001, count)
        for rank, wonder, gap in zip(ranks.tolist(), wonders.tolist(), gaps.tolist()):
            time += gap
            if wonder:
                key = cache_key("embedding", f"o{one_hit}")
                one_hit += 1
            else:
                key = names[ranking[min(rank, pool - 1)]]
            symbol = key.split(":")[1] if key.startswith("retrieval:") else None
            out.add(time, key, baseline_vol[symbol] if symbol else 0.0)
        # drift: hot keys cool down, the coldest retire, new keys appear hot
        cooled = sorted(rng.choice(top, size=moved, replace=False).tolist(), reverse=True)
        cooling = [ranking.pop(position) for position in cooled]
        for ident in cooling:
            ranking.insert(int(rng.integers(pool // 2, len(ranking) + 1)), ident)
        del ranking[pool - moved:]
        for _ in range(moved):
            ranking.insert(int(rng.integers(0, top)), new_key())
    return out.trace()


def volatility_bursts(requests: int, seed: int) -> Trace:
    rng = np.random.default_rng([seed, 3])
    out = _Requests(np.random.default_rng([seed, 4]))
    count = len(SYMBOLS)
    base = np.arange(1, count + 1, dtype=np.float64) ** -0.8
    base /= base.sum()
    volatile = np.zeros(count, dtype=bool)
    intervals, interval_p = ("1m", "5m", "15m", "1h", "1d"), np.array([8, 4, 2, 1, 1]) / 16
    kinds, kind_p = ("bars", "decisions", "features", "retrieval"), np.array([0.35, 0.20, 0.20, 0.25])
    # mean total 20 requests per step: divide by the stationary mean of (vol / 0.01) ** 1.5
    # (volatile 1/6 of the time; E[exp(1.5 * 0.2 * Z)] = exp(0.045))
    rate_scale = 20.0 / ((5 / 6 + 5.0 ** 1.5 / 6) * np.exp(0.045))
    step = 0
    while len(out.keys) < requests:
        switch = rng.random(count) < np.where(volatile, 0.01, 0.002)
        volatile ^= switch
        vol = np.where(volatile, 0.05, 0.01) * np.exp(0.2 * rng.standard_normal(count))
        rates = base * (vol / 0.01) ** 1.5
        rates *= rate_scale
        counts = rng.poisson(rates)
        emitted = int(counts.sum())
        if emitted:
            symbols = np.repeat(np.arange(count), counts)
            offsets = np.sort(rng.random(emitted))
            rng.shuffle(symbols)
            chosen_kinds = rng.choice(len(kinds), size=emitted, p=kind_p)
            for offset, symbol, kind in zip(offsets.tolist(), symbols.tolist(), chosen_kinds.tolist()):
                name = SYMBOLS[symbol]
                if kinds[kind] == "bars":
                    key = cache_key("bars", name, intervals[int(rng.choice(5, p=interval_p))])
                elif kinds[kind] == "decisions":
                    key = cache_key("decisions", name, (20, 50, 100)[int(rng.integers(3))])
                elif kinds[kind] == "features":
                    key = cache_key("features", name, ("technical", "quant")[int(rng.integers(2))], step // 300)
                else:
                    key = cache_key("retrieval", name, f"{step // 60}q{int(rng.geometric(0.3))}")
                out.add(step + offset, key, float(vol[symbol]))
        step += 1
    return _first(out.trace(), requests)


def backtest_scans(requests: int, seed: int) -> Trace:
    rng = np.random.default_rng([seed, 5])
    out = _Requests(np.random.default_rng([seed, 6]))
    hot = max(50, requests // 100)
    hot_kinds = ("bars", "decisions", "positions")
    hot_keys = []
    for index in range(hot):
        kind = hot_kinds[int(rng.integers(3))]
        if kind == "positions":
            hot_keys.append(cache_key("positions", f"acct{index}"))
        else:
            hot_keys.append(cache_key(kind, SYMBOLS[int(rng.integers(len(SYMBOLS)))], f"h{index}"))
    hot_order = rng.permutation(hot)
    cdf = _truncated_zipf_cdf(hot, 0.8)
    past_scans: list[list[str]] = []
    scan: list[str] = []
    position, scans_started, time = 0, 0, 0.0
    for _ in range(requests):
        time += float(rng.exponential(0.001))
        if position >= len(scan) and rng.random() < 1 / 400:
            if past_scans and rng.random() < 0.10:
                scan = past_scans[int(rng.integers(max(0, len(past_scans) - 20), len(past_scans)))]
            else:
                symbol = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
                length = int(rng.integers(200, 2001))
                scan = [cache_key("backtest", symbol, _digest(seed, scans_started, j)) for j in range(length)]
                past_scans.append(scan)
                scans_started += 1
            position = 0
        if position < len(scan) and rng.random() < 0.6:
            out.add(time, scan[position])
            position += 1
        else:
            rank = int(np.searchsorted(cdf, rng.random(), side="right"))
            out.add(time, hot_keys[int(hot_order[min(rank, hot - 1)])])
    return out.trace()


def mixed(requests: int, seed: int) -> Trace:
    parts = [generator(max(1, requests // 3 + (1 if index < requests % 3 else 0)), seed * 10 + index + 1)
             for index, generator in enumerate((zipf_drift, volatility_bursts, backtest_scans))]
    times, keys, sizes, vols = [], [], [], []
    for part in parts:
        span = float(part.times[-1] - part.times[0]) or 1.0
        times.append((part.times - part.times[0]) / span)  # every part spans [0, 1]
        keys.extend(part.keys[i] for i in part.ids.tolist())
        sizes.append(part.sizes)
        vols.append(part.volatility)
    return trace_from_requests(np.concatenate(times), keys, np.concatenate(sizes), np.concatenate(vols))


def _digest(seed: int, scan: int, index: int) -> str:
    return hashlib.blake2b(f"{seed}:{scan}:{index}".encode(), digest_size=6).hexdigest()


def _first(trace: Trace, requests: int) -> Trace:
    keys = [trace.keys[i] for i in trace.ids[:requests].tolist()]
    return trace_from_requests(trace.times[:requests], keys, trace.sizes[:requests], trace.volatility[:requests])


GENERATORS = {"zipf-drift": zipf_drift, "volatility-bursts": volatility_bursts, "backtest-scans": backtest_scans,
              "mixed": mixed}


def generate(workload: str, requests: int, seed: int) -> Trace:
    if workload not in GENERATORS:
        raise DataError(f"unknown workload {workload!r}: use one of {', '.join(WORKLOADS)}")
    if requests < 1:
        raise DataError(f"requests must be at least 1, got {requests}")
    return GENERATORS[workload](requests, seed)


def write_generated(trace: Trace, path: str | os.PathLike) -> None:
    write_trace(path, trace.times, [trace.keys[i] for i in trace.ids.tolist()], trace.sizes, trace.volatility)
