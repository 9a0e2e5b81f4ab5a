"""Classical eviction baselines from libCacheSim, replayed on the same requests as the agent.

libcachesim is GPL-3.0: an optional evaluation tool that the pipeline never imports. This is the
only module that imports it, lazily inside functions (an import-linter contract keeps it so)."""
from __future__ import annotations

import math
import os
import tempfile
import time
from typing import Callable, Sequence

import numpy as np

from streams.errors import AlgoError
from streams.memory.trace import Trace, write_oracle_general

LIBCACHESIM_PIN = "libcachesim==0.3.5"
NOT_INSTALLED = (f"libcachesim is not installed: pip install {LIBCACHESIM_PIN} "
                 "(GPL-3.0, an optional evaluation tool the pipeline never imports)")
# our name -> libcachesim class name; Belady becomes BeladySize in byte mode (see belady_variant)
POLICIES: dict[str, str] = {"LRU": "LRU", "LFU": "LFU", "ARC": "ARC", "LIRS": "LIRS", "WTinyLFU": "WTinyLFU",
                            "SIEVE": "Sieve", "S3-FIFO": "S3FIFO", "Belady": "Belady"}


# libCacheSim's defaults degenerate on small caches (measured on 0.3.5): W-TinyLFU's 1% window holds
# no object below 100 objects (it then admits nothing: miss ratio 1.0) and its SLRU aborts the process
# below ~7 objects; S3-FIFO's 10% small queue below ~20 objects admits nothing and aborts at 1. So
# each queue is given room for at least two objects, and below these sizes the policy is not run.
MIN_OBJECTS = {"WTinyLFU": 8, "S3-FIFO": 5}


def _policy_parameters(name: str, objects: float) -> dict:
    """Constructor arguments for a cache holding about `objects` objects."""
    if name == "WTinyLFU":
        return {"window_size": min(0.5, max(0.01, 2.0 / objects))}
    if name == "S3-FIFO":
        return {"small_size_ratio": min(0.5, max(0.1, 2.0 / objects))}
    return {}


class BaselineError(AlgoError):
    """libCacheSim is missing or failed on a trace."""


def belady_variant(use_bytes: bool) -> str:
    """Belady's MIN is optimal for unit sizes only; with sizes libCacheSim's BeladySize (evict the
    sampled object with the largest next-access distance times size) stands in: a strong oracle
    heuristic, not a proven lower bound. libCacheSim's Belady admits every miss (MIN without bypass;
    checked against a brute-force loop in the tests)."""
    return "BeladySize" if use_bytes else "Belady"


def _libcachesim():
    try:
        import libcachesim
    except ImportError:
        raise BaselineError(NOT_INSTALLED) from None
    return libcachesim


def baseline_miss_ratios(trace: Trace, count_from: int, capacity: int, *, use_bytes: bool) -> dict[str, dict]:
    """Per policy: requests, misses, bytes_requested, bytes_missed, miss_ratio, byte_miss_ratio,
    implementation, seconds (misses and ratios None, with a `skipped` reason, for a policy libCacheSim
    cannot run at this size: MIN_OBJECTS); only requests with index >= count_from are counted (the
    earlier ones warm the cache)."""
    return baseline_results(trace, count_from, [capacity], use_bytes=use_bytes)[capacity]


def baseline_results(trace: Trace, count_from: int, capacities: Sequence[int], *, use_bytes: bool,
                     policies: Sequence[str] = tuple(POLICIES),
                     progress: Callable[[str], None] | None = None) -> dict[int, dict[str, dict]]:
    """baseline_miss_ratios for several capacities, writing the oracleGeneral file once."""
    lcs = _libcachesim()
    if not 0 <= count_from < len(trace):
        raise BaselineError(f"count_from {count_from} is outside the trace's {len(trace)} requests")
    unknown = [name for name in policies if name not in POLICIES]
    if unknown:
        raise BaselineError(f"unknown baseline(s) {', '.join(unknown)}: use {', '.join(POLICIES)}")
    sizes = trace.byte_sizes().tolist()
    scored_bytes = int(sum(sizes[count_from:]))
    scored = len(trace) - count_from
    largest = np.zeros(trace.distinct(), dtype=np.int64)
    np.maximum.at(largest, trace.ids, trace.byte_sizes())
    mean_size = float(largest.mean())  # bytes per distinct object: how many objects a byte cache holds
    # hash table buckets: enough for the distinct keys, not libCacheSim's 2**24 default per cache
    hashpower = min(24, max(12, math.ceil(math.log2(max(2, trace.distinct())))))
    # times are dense ranks (< n): keep every object's TTL beyond the trace
    ttl = max(86400 * 300, len(trace) + 1)
    handle, path = tempfile.mkstemp(prefix="algo-memory-", suffix=".oracleGeneral")
    os.close(handle)
    results: dict[int, dict[str, dict]] = {}
    try:
        write_oracle_general(trace, path, unit_sizes=not use_bytes)
        for capacity in capacities:
            if capacity < 1:
                raise BaselineError(f"cache capacity must be at least 1, got {capacity}")
            results[capacity] = {}
            for name in policies:
                class_name = belady_variant(use_bytes) if name == "Belady" else POLICIES[name]
                objects = capacity / mean_size if use_bytes else float(capacity)
                if objects < MIN_OBJECTS.get(name, 0):
                    results[capacity][name] = {
                        "requests": scored, "misses": None, "bytes_requested": scored_bytes, "bytes_missed": None,
                        "miss_ratio": None, "byte_miss_ratio": None, "implementation": f"libcachesim.{class_name}",
                        "seconds": 0.0, "skipped": f"libCacheSim's {class_name} needs room for at least "
                                                   f"{MIN_OBJECTS[name]} objects (this cache holds ~{objects:.1f})"}
                    continue
                if progress:
                    progress(f"baseline {name} ({class_name}) at capacity {capacity}")
                started = time.perf_counter()
                cache = getattr(lcs, class_name)(cache_size=int(capacity), default_ttl=ttl, hashpower=hashpower,
                                                 **_policy_parameters(name, objects))
                reader = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
                misses = bytes_missed = 0
                get = cache.get
                for index, request in enumerate(reader):
                    hit = get(request)
                    if index >= count_from and not hit:
                        misses += 1
                        bytes_missed += sizes[index]
                if index != len(trace) - 1:
                    raise BaselineError(f"libCacheSim read {index + 1} requests of {len(trace)} from its trace file")
                results[capacity][name] = {
                    "requests": scored, "misses": misses, "bytes_requested": scored_bytes, "bytes_missed": bytes_missed,
                    "miss_ratio": misses / scored,
                    "byte_miss_ratio": bytes_missed / scored_bytes if scored_bytes else 0.0,
                    "implementation": f"libcachesim.{class_name}", "seconds": time.perf_counter() - started,
                }
                del cache, reader
    finally:
        os.unlink(path)
    return results
