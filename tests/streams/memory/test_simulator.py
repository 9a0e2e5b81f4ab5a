"""The simulator: exact LRU (libCacheSim agrees miss for miss), the warm-up rule, byte mode, and
scorers ranking HALP-style proposals."""
from __future__ import annotations

import numpy as np
import pytest

from streams.errors import DataError
from streams.memory.simulator import simulate
from streams.memory.trace import trace_from_requests


def zipf_trace(n: int = 6000, keys: int = 600, seed: int = 1):
    rng = np.random.default_rng(seed)
    ids = rng.zipf(1.3, n) % keys
    size_of = rng.integers(0, 400, keys)  # one size per key, as in the synthetic workloads
    return trace_from_requests(np.arange(n, dtype=float), [f"bars:S{k % 7}:{k}" for k in ids], size_of[ids])


def libcachesim_lru_misses(trace, capacity: int, count_from: int, use_bytes: bool) -> int:
    import libcachesim as lcs

    cache = lcs.LRU(capacity)
    sizes = trace.byte_sizes().tolist() if use_bytes else [1] * len(trace)
    misses = 0
    request = lcs.Request()
    for index, key in enumerate(trace.ids.tolist()):
        request.obj_id, request.obj_size, request.clock_time = key, sizes[index], index
        if not cache.get(request) and index >= count_from:
            misses += 1
    return misses


@pytest.mark.parametrize("capacity", [5, 60])
def test_lru_equals_libcachesim_miss_for_miss(capacity):
    trace = zipf_trace()
    result = simulate(trace, "lru", capacity, use_bytes=False, count_from=2000)
    assert result.requests == len(trace) - 2000
    assert result.misses == libcachesim_lru_misses(trace, capacity, 2000, use_bytes=False)
    assert result.evictions > 0


def test_lru_in_bytes_equals_libcachesim():
    trace = zipf_trace()
    result = simulate(trace, "lru", 20_000, use_bytes=True, count_from=1000)
    assert result.misses == libcachesim_lru_misses(trace, 20_000, 1000, use_bytes=True)
    assert 0 < result.bytes_missed < result.bytes_requested == int(trace.byte_sizes()[1000:].sum())


class Oldest:
    """Evicts the candidate idle longest: with the LRU tail among the proposals that is exact LRU."""

    def score(self, features):
        return features[:, 0]


class Newest:
    def score(self, features):
        return -features[:, 0]


def test_a_scorer_ranks_the_proposals_and_decides_the_misses():
    trace = zipf_trace()
    lru = simulate(trace, "lru", 50, use_bytes=False, count_from=3000)
    assert simulate(trace, Oldest(), 50, use_bytes=False, count_from=3000, queue=1).misses == lru.misses
    newest = simulate(trace, Newest(), 50, use_bytes=False, count_from=3000)
    sampled = simulate(trace, "random-sample", 50, use_bytes=False, count_from=3000, seed=4)
    assert newest.misses > sampled.misses  # evicting the freshest is a bad policy
    assert newest.evictions > 0 and newest.decision_seconds > 0


def test_warm_up_requests_are_not_counted_and_bad_arguments_are_refused():
    trace = zipf_trace(n=1000)
    assert simulate(trace, "lru", 10, use_bytes=False, count_from=1000).misses == 0
    everything = simulate(trace, "lru", 10, use_bytes=False, count_from=0)
    assert everything.requests == 1000 and everything.misses >= trace.distinct()
    with pytest.raises(DataError, match="unknown baseline"):
        simulate(trace, "fifo", 10, use_bytes=False, count_from=0)
    with pytest.raises(DataError, match="capacity"):
        simulate(trace, "lru", 0, use_bytes=False, count_from=0)
    with pytest.raises(DataError, match="count_from"):
        simulate(trace, "lru", 10, use_bytes=False, count_from=2000)
