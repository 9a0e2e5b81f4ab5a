from collections import Counter

import numpy as np
import pytest

from streams.errors import DataError
from streams.memory import keys as cache_keys
from streams.memory.synthetic import SIZE_BY_KIND, WORKLOADS, generate, write_generated
from streams.memory.trace import read_trace


def _requested_keys(trace):
    return [trace.keys[i] for i in trace.ids.tolist()]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_deterministic_per_seed_and_different_across_seeds(workload):
    first, again, other = generate(workload, 3000, 5), generate(workload, 3000, 5), generate(workload, 3000, 6)
    assert len(first) == 3000
    assert _requested_keys(first) == _requested_keys(again)
    assert first.times.tolist() == again.times.tolist() and first.sizes.tolist() == again.sizes.tolist()
    assert _requested_keys(first) != _requested_keys(other)
    assert np.all(np.diff(first.times) >= 0)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_one_size_per_key_drawn_around_its_kinds_median(workload):
    trace = generate(workload, 4000, 1)
    per_key = {}
    for key_id, size in zip(trace.ids.tolist(), trace.sizes.tolist()):
        assert per_key.setdefault(key_id, size) == size
    by_kind = {}
    for key_id, size in per_key.items():
        by_kind.setdefault(cache_keys.kind_of(trace.keys[key_id]), []).append(size)
    for kind, sizes in by_kind.items():
        if len(sizes) >= 30:
            median, _ = SIZE_BY_KIND[kind]
            assert median / 1.6 < np.median(sizes) < median * 1.6, kind


def test_zipf_drift_popularity_drifts_and_has_one_hit_wonders():
    trace = generate("zipf-drift", 40_000, 2)
    keys = _requested_keys(trace)
    early = {key for key, _ in Counter(keys[:8000]).most_common(50)}
    late = {key for key, _ in Counter(keys[-8000:]).most_common(50)}
    assert len(early & late) < 25  # hot keys cooled down, new ones became hot
    wonders = sum(key.startswith("embedding:o") for key in keys) / len(keys)
    assert 0.13 < wonders < 0.17
    counts = Counter(keys)
    assert all(counts[key] == 1 for key in keys if key.startswith("embedding:o"))


def test_volatility_bursts_rate_follows_volatility():
    trace = generate("volatility-bursts", 40_000, 3)
    kinds = {cache_keys.kind_of(key) for key in trace.keys}
    assert kinds == {"bars", "decisions", "features", "retrieval"}
    assert all(cache_keys.symbol_of(key) for key in trace.keys)
    symbols = np.array([cache_keys.symbol_of(trace.keys[i]) for i in trace.ids.tolist()])
    steps = trace.times.astype(int)
    volatile = trace.volatility > 0.025
    assert 0.05 < volatile.mean() < 0.9
    # per (symbol, step) with requests: steps in a volatile regime carry more requests
    busy = Counter(zip(symbols.tolist(), steps.tolist()))
    regime = {(s, t): v for s, t, v in zip(symbols.tolist(), steps.tolist(), volatile.tolist())}
    calm_rate = np.mean([n for cell, n in busy.items() if not regime[cell]])
    hot_rate = np.mean([n for cell, n in busy.items() if regime[cell]])
    assert hot_rate > 1.5 * calm_rate
    # one volatility per symbol and step
    for (symbol, step), value in list(zip(zip(symbols.tolist(), steps.tolist()), trace.volatility.tolist()))[:2000]:
        assert regime[(symbol, step)] == (value > 0.025)


def test_backtest_scans_are_sequential_and_mostly_read_once():
    trace = generate("backtest-scans", 40_000, 4)
    keys = _requested_keys(trace)
    scans = [key for key in keys if key.startswith("backtest:")]
    assert 0.2 < len(scans) / len(keys) < 0.8
    counts = Counter(scans)
    assert sum(1 for n in counts.values() if n == 1) / len(counts) > 0.7
    hot = Counter(key for key in keys if not key.startswith("backtest:"))
    assert len(hot) <= 400 and hot.most_common(1)[0][1] > 100


def test_mixed_holds_all_three():
    trace = generate("mixed", 6000, 7)
    keys = set(trace.keys)
    assert any(k.startswith("embedding:") for k in keys) and any(k.startswith("backtest:") for k in keys)
    assert any(k.startswith("features:") for k in keys)


def test_bad_workload_or_count():
    with pytest.raises(DataError, match="unknown workload"):
        generate("lru-killer", 10, 0)
    with pytest.raises(DataError, match="at least 1"):
        generate("mixed", 0, 0)


def test_written_trace_reads_back(tmp_path):
    trace = generate("volatility-bursts", 2000, 9)
    write_generated(trace, tmp_path / "v.csv")
    back = read_trace(tmp_path / "v.csv")
    assert back.keys == trace.keys and back.ids.tolist() == trace.ids.tolist()
    assert back.volatility.tolist() == pytest.approx(trace.volatility.tolist())
    assert np.allclose(back.times, trace.times)
