"""Replays a trace through a cache of a given capacity under an eviction policy and counts misses.

Policies: "lru" (exact), "random-sample" (Redis-style sampled LRU: the oldest of `candidates`
uniformly sampled keys), or any scorer with `.score(features) -> (n,) float` (higher = evict first), such as
model.EvictionPolicy. A scorer sees HALP-style proposals: `candidates` keys, the LRU tail (a
quarter of them) and a uniform sample of the cache, ranked in ONE batch; the best is
evicted and the next best are queued as pre-scored victims for the next evictions (skipped if
accessed since), which amortises the batch's cost over several evictions.

Requests before `count_from` warm the cache and are not counted (libCacheSim's baselines in
baselines.py are scored the same way). Sizes: unit objects unless `use_bytes` (then a size of 0
counts as 1 and capacity is in bytes; an object larger than the cache is served but never cached).
"""
from __future__ import annotations

import time
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from streams.errors import DataError
from streams.memory.features import KeyTable
from streams.memory.trace import Trace

BASELINES = ("lru", "random-sample")
TAIL_FRACTION = 0.25  # share of the candidates taken from the LRU tail
RECENT_FRACTION = 0.0  # share taken from the latest insertions: 1/8 was worse on dev traces (zipf-drift 1%: 0.634 vs 0.612)
# 128 candidates, 8 victims per batch: the same selectivity as 64 and 4 (each victim is in the best
# 1/16 of its batch), at half the cost per eviction, since a batch's cost is mostly per-call overhead
CANDIDATES_DEFAULT = 128
DEFAULT_QUEUE = 8  # victims taken per scored batch (the best at once, the next best queued)


class Scorer(Protocol):
    def score(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SimResult:
    requests: int
    misses: int
    bytes_requested: int
    bytes_missed: int
    evictions: int
    decision_seconds: float

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0

    @property
    def byte_miss_ratio(self) -> float:
        return self.bytes_missed / self.bytes_requested if self.bytes_requested else 0.0


# recorder(now, key_ids, features, last_access_indices) sees every scored batch (training data)
Recorder = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


class _Members:
    """The cached key ids in an array, for O(1) uniform sampling (swap-remove). array.array: its
    scalar reads and writes cost a fraction of numpy's, and numpy views it without a copy."""

    def __init__(self, n_ids: int):
        self.items = array("q", bytes(8 * max(n_ids, 1)))
        self.position = array("q", bytes(8 * max(n_ids, 1)))
        self.size = 0

    def add(self, key_id: int) -> None:
        self.items[self.size] = key_id
        self.position[key_id] = self.size
        self.size += 1

    def discard(self, key_id: int) -> None:
        at = self.position[key_id]
        self.size -= 1
        last = self.items[self.size]
        self.items[at] = last
        self.position[last] = at

    def view(self) -> np.ndarray:
        return np.frombuffer(self.items, dtype=np.int64)[:self.size]


def simulate(trace: Trace, policy: "str | Scorer", capacity: int, *, use_bytes: bool, count_from: int,
             candidates: int = CANDIDATES_DEFAULT, seed: int = 0, end: int | None = None, queue: int = DEFAULT_QUEUE,
             recorder: Recorder | None = None, table: KeyTable | None = None) -> SimResult:
    """Simulate requests [0, end) (all by default); count those in [count_from, end)."""
    end = len(trace) if end is None else end
    if capacity < 1:
        raise DataError(f"cache capacity must be >= 1, got {capacity}")
    if not 0 <= count_from <= end <= len(trace):
        raise DataError(f"count_from {count_from} / end {end} outside the trace's {len(trace)} requests")
    if isinstance(policy, str):
        if policy not in BASELINES:
            raise DataError(f"unknown baseline {policy!r}: use one of {', '.join(BASELINES)} or a trained policy")
        if policy == "lru":
            return _simulate_lru(trace, capacity, use_bytes=use_bytes, count_from=count_from, end=end)
    if candidates < 2:
        raise DataError(f"candidates must be >= 2, got {candidates}")
    rng = np.random.default_rng(seed)
    ids_list = trace.ids[:end].tolist()
    sizes_list = (trace.byte_sizes() if use_bytes else np.ones(len(trace), dtype=np.int64))[:end].tolist()
    kinds_list = trace.key_kinds().tolist()
    vol_list = trace.volatility[:end].tolist()
    table = table if table is not None else KeyTable(trace.distinct())
    sampled_lru = policy == "random-sample"
    scorer = None if sampled_lru else policy
    members = _Members(trace.distinct())
    lru: OrderedDict[int, int] = OrderedDict()  # key id -> cached size, oldest first
    cached_size = [0] * max(trace.distinct(), 1)
    tail = max(1, int(candidates * TAIL_FRACTION))
    recent: deque[int] = deque(maxlen=int(candidates * RECENT_FRACTION))  # maxlen 0: stays empty
    uniforms, draw = rng.random(1 << 16), 0
    pending: list[int] = []  # pre-scored victims, best first
    scored_at = 0
    used = misses = bytes_requested = bytes_missed = evictions = 0
    decision = 0.0
    access = table.access
    for now in range(end):
        key = ids_list[now]
        size = sizes_list[now]
        counted = now >= count_from
        if counted:
            bytes_requested += size
        if key in lru:
            lru.move_to_end(key)
            used += size - cached_size[key]
            cached_size[key] = size
            access(key, now, size, kinds_list[key], vol_list[now])
            if used <= capacity:
                continue
        else:
            if counted:
                misses += 1
                bytes_missed += size
            access(key, now, size, kinds_list[key], vol_list[now])
            if size > capacity:
                continue
            lru[key] = size
            cached_size[key] = size
            members.add(key)
            recent.append(key)
            used += size
        while used > capacity:
            started = time.perf_counter()
            victim = -1
            while pending:
                candidate = pending.pop()
                if candidate in lru and table.last_access(candidate) < scored_at:
                    victim = candidate
                    break
            if victim < 0:
                if members.size <= candidates:
                    proposals = members.view().copy()
                else:
                    if draw + candidates > len(uniforms):
                        uniforms, draw = rng.random(1 << 16), 0
                    picks = (uniforms[draw:draw + candidates] * members.size).astype(np.int64)
                    draw += candidates
                    proposals = members.view()[picks]  # duplicates are harmless: a popped victim is skipped
                    if not sampled_lru:  # the LRU tail: what a recency queue would propose
                        position = 0
                        for k in lru:
                            proposals[position] = k
                            position += 1
                            if position == tail:
                                break
                        for k in recent:
                            if k in lru:
                                proposals[position] = k
                                position += 1
                features = table.features(proposals, now)
                if recorder is not None:
                    recorder(now, proposals, features, table.last_accesses(proposals))
                if sampled_lru:
                    order = np.argsort(features[:, 0], kind="stable")  # log age, ascending
                else:
                    order = np.argsort(np.asarray(scorer.score(features)), kind="stable")
                best = proposals[order[::-1][:max(queue, 1)]].tolist()
                victim = best[0]
                pending = best[:0:-1]  # the rest, worst last so pop() gives the next best
                scored_at = now
            size_out = lru.pop(victim)
            members.discard(victim)
            used -= size_out
            evictions += 1
            decision += time.perf_counter() - started
    return SimResult(requests=end - count_from, misses=misses, bytes_requested=bytes_requested,
                     bytes_missed=bytes_missed, evictions=evictions, decision_seconds=decision)


def _simulate_lru(trace: Trace, capacity: int, *, use_bytes: bool, count_from: int, end: int) -> SimResult:
    ids_list = trace.ids[:end].tolist()
    sizes_list = (trace.byte_sizes() if use_bytes else np.ones(len(trace), dtype=np.int64))[:end].tolist()
    lru: OrderedDict[int, int] = OrderedDict()
    used = misses = bytes_requested = bytes_missed = evictions = 0
    decision = 0.0
    for now in range(end):
        key = ids_list[now]
        size = sizes_list[now]
        counted = now >= count_from
        if counted:
            bytes_requested += size
        if key in lru:
            lru.move_to_end(key)
            used += size - lru[key]
            lru[key] = size
        else:
            if counted:
                misses += 1
                bytes_missed += size
            if size > capacity:
                continue
            lru[key] = size
            used += size
        if used > capacity:
            started = time.perf_counter()
            while used > capacity:
                _, size_out = lru.popitem(last=False)
                used -= size_out
                evictions += 1
            decision += time.perf_counter() - started
    return SimResult(requests=end - count_from, misses=misses, bytes_requested=bytes_requested,
                     bytes_missed=bytes_missed, evictions=evictions, decision_seconds=decision)
