"""Live tiering: a cache trace replayed open-loop against a real Redis + the shared Postgres through
the TieredStore, with the Memory agent's policy vs Redis's own allkeys-lru and allkeys-lfu at the same
maxmemory.

Setup. Each run starts a PRIVATE redis-server (its own port, no persistence) with maxmemory = its
empty used_memory + `--cache-fraction` of the trace's bytes (the sum of its distinct keys' sizes), and
a TieredStore over it and the shared Postgres's cold_store (every key carries a bench prefix; those
rows are deleted before and after each run). Every request of the trace is a `store.get(key, load)`:
HOT from Redis, else COLD from cold_store (then admitted to Redis), else MISS and `load()` makes the
value (bytes of the key's size; no recompute delay is simulated) and writes it to Redis (or to
cold_store when Redis refuses it: OOM under noeviction). A value's size is the trace's size x
`--size-scale` (default 4: the cache is then several MiB beside the ~1 MiB an empty Redis uses itself),
and load() first sleeps keys.recompute_cost(kind) x `--recompute-ms` (bars 2 ms, backtests 20 ms...):
a value Redis threw away costs its recompute, as it would in the pipeline.
  1. agent:        maxmemory-policy noeviction; the Memory agent's decision loop runs in-process every
                   MEMORY_CHECK_INTERVAL_S (streams.memory.tierer.Tierer, the very code of the worker),
                   fed the store's accesses directly (the worker reads them from cache.access), and
                   demotes/drops through the store above MEMORY_HIGH_WATERMARK down to MEMORY_LOW_WATERMARK.
  2. allkeys-lru / 3. allkeys-lfu: Redis evicts on its own (evicted values are gone: the next read
                   goes to cold_store, which holds only what was demoted or refused, else a MISS).
Open loop: request i is issued at its trace time, rescaled so the mean rate is `--rate` per second,
without waiting for earlier replies; a read's latency runs from its scheduled time to its answer
(queueing included: no coordinated omission). The first `--warmup` of the requests warm the cache and
are not counted.

Reported per run: p50/p99/max read latency (ms), hit ratio (HOT / reads), Postgres reads (reads that
missed Redis: COLD + MISS each query cold_store), cold hits, recomputes (MISS), evictions (the agent's
demotions + drops, or Redis's evicted_keys), refused writes, and how late the scheduler ran (p99).

    .venv/bin/python benchmarks/tiering.py [--trace PATH | --workload volatility-bursts --requests 12000 --seed 7]
        [--rate 100] [--cache-fraction 0.08] [--warmup 0.2] [--size-scale 4] [--recompute-ms 1]
        [--runs agent,allkeys-lru,allkeys-lfu] [--json]
Needs the local stack's Postgres with migrations (`algo provision`) and redis-server on the PATH.
Writes benchmarks/results/tiering.json. Seeds: the report uses seed 7 of the generated workload; the
policy was trained by `algo memory train` on other seeds and workloads (its metadata says which).
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from streams.errors import ServiceUnavailable  # noqa: E402
from streams.memory import keys as cache_keys  # noqa: E402
from streams.memory.model import EvictionPolicy  # noqa: E402
from streams.memory.store import TieredStore  # noqa: E402
from streams.memory.tierer import Tierer  # noqa: E402
from streams.memory.trace import Trace, read_trace  # noqa: E402
from streams.settings import get_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "tiering.json"
RUNS = ("agent", "allkeys-lru", "allkeys-lfu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    def __init__(self, policy: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--maxmemory-policy", policy, "--maxmemory-samples", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, socket_timeout=10)
        for _ in range(400):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.025)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(10)


class LocalAccessLog:
    """What the store's AccessLog would put on cache.access, counted here and handed to the in-process
    agent (the worker gets the same records from Kafka)."""

    def __init__(self, prefix: str, measure_from: list[int]) -> None:
        self.prefix, self.measure_from = prefix, measure_from
        self.tierer: Tierer | None = None
        self.counts = {"HOT": 0, "COLD": 0, "MISS": 0}
        self.index = 0  # the request being answered (set by the replay before each get)

    def record(self, key: str, op: str, tier: str, size_bytes: int, latency_us: int) -> None:
        original = key[len(self.prefix):]
        if op == "GET" and self.index >= self.measure_from[0]:
            self.counts[tier] += 1
        if self.tierer is not None:
            self.tierer.observe({"key": key, "op": op, "tier": tier, "size_bytes": size_bytes,
                                 "kind": cache_keys.kind_of(original), "symbol": cache_keys.symbol_of(original)})

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"recorded": sum(self.counts.values()), "dropped": 0}


def clean_cold(settings, prefix: str) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM cold_store WHERE key LIKE %s", (prefix.replace("_", r"\_") + "%",))


async def replay(trace: Trace, schedule: np.ndarray, run: str, base_settings, policy, maxmemory_extra: float,
                 warmup: int, size_scale: float, recompute_ms: float) -> dict:
    server = PrivateRedis("noeviction" if run == "agent" else run)
    prefix = f"bench-tiering-{uuid.uuid4().hex[:8]}:"
    try:
        baseline = int(server.client.info("memory")["used_memory"])
        maxmemory = baseline + int(maxmemory_extra)
        server.client.config_set("maxmemory", maxmemory)
        memory_settings = dataclasses.replace(base_settings.memory, redis_maxmemory=str(maxmemory))
        settings = dataclasses.replace(base_settings, redis_url=server.url, memory=memory_settings)
        clean_cold(settings, prefix)
        measure_from = [warmup]
        access_log = LocalAccessLog(prefix, measure_from)
        key_sizes = value_sizes(trace, size_scale)
        symbols = trace.key_symbols()
        costs = [cache_keys.recompute_cost(cache_keys.kind_of(key)) * recompute_ms / 1e3 for key in trace.keys]
        latencies = np.full(len(trace), np.nan)
        lateness = np.zeros(len(trace))
        async with TieredStore(settings, agent="bench-tiering", access_log=access_log) as store:
            client = aioredis.from_url(server.url, socket_timeout=10)
            tierer = None
            round_errors = [0]
            stop = asyncio.Event()
            agent_task = None
            if run == "agent":
                tierer = Tierer(settings, store, client, policy, unseen_samples=0)
                access_log.tierer = tierer

                async def agent_loop() -> None:
                    while not stop.is_set():
                        try:
                            await tierer.round()
                        except ServiceUnavailable:  # the worker waits it out (until_available): so does this
                            round_errors[0] += 1
                        try:
                            await asyncio.wait_for(stop.wait(), settings.memory.check_interval_s)
                        except asyncio.TimeoutError:
                            pass
                agent_task = asyncio.create_task(agent_loop())

            async def request(i: int, scheduled: float) -> None:
                key_id = int(trace.ids[i])
                key = prefix + trace.keys[key_id]
                size = int(key_sizes[key_id])
                symbol = symbols[key_id]
                if tierer is not None and symbol is not None:
                    tierer.state.volatility.set(symbol, float(trace.volatility[i]))
                access_log.index = i

                async def load() -> bytes:
                    await asyncio.sleep(costs[key_id])  # recomputing: keys.recompute_cost x --recompute-ms
                    return b"v" * size
                await store.get(key, load)
                latencies[i] = time.perf_counter() - scheduled

            started = time.perf_counter()
            tasks = set()
            for i, offset in enumerate(schedule.tolist()):
                scheduled = started + offset
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                lateness[i] = max(0.0, time.perf_counter() - scheduled)
                task = asyncio.create_task(request(i, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
            stop.set()
            if agent_task is not None:
                await agent_task
            store_stats = store.stats()
            info_stats = server.client.info("stats")
            used = int(server.client.info("memory")["used_memory"])
            await client.aclose()
        counted = latencies[warmup:]
        reads = sum(access_log.counts.values())
        evictions = (tierer.totals["demoted"] + tierer.totals["dropped"]) if tierer else int(info_stats["evicted_keys"])
        result = {
            "run": run, "maxmemory_bytes": maxmemory, "redis_baseline_bytes": baseline, "used_bytes_at_end": used,
            "requests": len(trace), "counted": int(len(counted)), "seconds": round(elapsed, 2),
            "achieved_rate": round(len(trace) / elapsed, 1),
            "p50_ms": round(float(np.percentile(counted, 50)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(counted, 99)) * 1e3, 3),
            "max_ms": round(float(np.max(counted)) * 1e3, 3),
            "hit_ratio": round(access_log.counts["HOT"] / reads, 4) if reads else None,
            "postgres_reads": access_log.counts["COLD"] + access_log.counts["MISS"],
            "cold_hits": access_log.counts["COLD"], "recomputes": access_log.counts["MISS"],
            "evictions": evictions, "refused_writes": int(store_stats["refused_writes"]),
            "scheduler_late_p99_ms": round(float(np.percentile(lateness, 99)) * 1e3, 3),
            "redis_errors": int(store_stats["redis_errors"]), "agent_round_errors": round_errors[0],
        }
        if tierer is not None:
            result.update(demotions=tierer.totals["demoted"], drops=tierer.totals["dropped"],
                          rounds=tierer.totals["rounds"], policy_version=policy.version,
                          decision_us_per_eviction=round(1e6 * tierer.decision_seconds / max(evictions, 1), 2))
        return result
    finally:
        clean_cold(base_settings, prefix)
        server.stop()


def value_sizes(trace: Trace, size_scale: float) -> np.ndarray:
    """One value per key: its last size in the trace (at least 1 byte), times size_scale."""
    sizes = np.zeros(trace.distinct(), dtype=np.int64)
    sizes[trace.ids] = np.maximum(np.round(np.maximum(trace.sizes, 1) * size_scale), 1).astype(np.int64)
    return sizes


def load_policy(settings) -> EvictionPolicy:
    if not settings.memory.model_dir:
        registered = EvictionPolicy.load_registered(settings)
        if registered is not None:
            return registered
    return EvictionPolicy.shipped(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", help="a trace CSV (time,key,size[,volatility]); default: a generated workload")
    parser.add_argument("--workload", default="volatility-bursts")
    parser.add_argument("--requests", type=int, default=12_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=100.0, help="mean requests per second of the replay")
    parser.add_argument("--cache-fraction", type=float, default=0.08, help="maxmemory above empty, of the trace's bytes")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of requests not counted")
    parser.add_argument("--size-scale", type=float, default=4.0,
                        help="value sizes x this (so the cache is large beside Redis's ~1 MiB of its own)")
    parser.add_argument("--recompute-ms", type=float, default=1.0,
                        help="a MISS's load() sleeps keys.recompute_cost(kind) x this many ms")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    if args.trace:
        trace, source = read_trace(args.trace), args.trace
    else:
        from streams.memory.synthetic import generate

        trace, source = generate(args.workload, args.requests, args.seed), f"{args.workload} seed {args.seed}"
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown or len(trace) < 10:
        raise SystemExit(f"tiering: unknown run(s) {unknown} (use {', '.join(RUNS)})" if unknown
                         else "tiering: the trace needs at least 10 requests")
    policy = load_policy(settings) if "agent" in runs else None
    total_bytes = int(value_sizes(trace, args.size_scale).sum())
    span = float(trace.times[-1] - trace.times[0])
    relative = (trace.times - trace.times[0]) / span if span > 0 else np.linspace(0, 1, len(trace))
    schedule = relative * (len(trace) / args.rate)
    warmup = int(len(trace) * args.warmup)
    results = []
    for run in runs:
        print(f"tiering: {run} on {source} ({len(trace):,} requests, {trace.distinct():,} keys, "
              f"{total_bytes / 2**20:.1f} MiB) at {args.rate:g}/s", file=sys.stderr, flush=True)
        results.append(asyncio.run(replay(trace, schedule, run, settings, policy, args.cache_fraction * total_bytes,
                                          warmup, args.size_scale, args.recompute_ms)))
        print(f"tiering: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    report = {
        "trace": source, "requests": len(trace), "distinct_keys": trace.distinct(), "trace_bytes": total_bytes,
        "cache_fraction": args.cache_fraction, "rate": args.rate, "warmup": args.warmup,
        "size_scale": args.size_scale, "recompute_ms_per_cost": args.recompute_ms,
        "watermarks": [settings.memory.low_watermark, settings.memory.high_watermark],
        "check_interval_s": settings.memory.check_interval_s, "candidates": settings.memory.candidates,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                    "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()},
        "runs": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report))
        return
    header = ("run", "p50 ms", "p99 ms", "max ms", "hit ratio", "PG reads", "cold hits", "recomputes", "evictions",
              "refused")
    print(f"\n{source}: {len(trace):,} requests, maxmemory {results[0]['maxmemory_bytes'] / 2**20:.2f} MiB "
          f"({args.cache_fraction:.0%} of {total_bytes / 2**20:.1f} MiB above an empty Redis), {args.rate:g} req/s open loop")
    print(" | ".join(header))
    for r in results:
        print(" | ".join(str(x) for x in (r["run"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["hit_ratio"],
                                          r["postgres_reads"], r["cold_hits"], r["recomputes"], r["evictions"],
                                          r["refused_writes"])))
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
