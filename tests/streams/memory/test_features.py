"""KeyTable: the vectorised features equal a slow per-key reference computed from the raw history."""
from __future__ import annotations

import math

import numpy as np
import pytest

from streams.errors import DataError
from streams.memory import features as f


def reference(history: list[int], now: int, size: int, kind: int, volatility: float) -> np.ndarray:
    """The features of a key accessed at the virtual times `history`, straight from their definitions."""
    gaps = [b - a for a, b in zip(history, history[1:])][::-1]  # most recent first
    row = [math.log1p(now - history[-1]), math.log1p(len(history))]
    row += [math.log1p(gaps[i]) if i < len(gaps) else math.log1p(f.NO_GAP) for i in range(f.GAP_HISTORY)]
    row.append(math.log1p((history[-1] - history[0]) / (len(history) - 1)) if len(history) > 1 else math.log1p(f.NO_GAP))
    for half_life in f.HALF_LIVES:
        row.append(math.log1p(sum(0.5 ** ((now - t) / half_life) for t in history)))
    row += [math.log1p(size), math.log1p(volatility)]
    row += [1.0 if i == kind else 0.0 for i in range(len(f.KIND_NAMES))]
    return np.array(row)


def test_features_match_a_slow_reference():
    rng = np.random.default_rng(3)
    table = f.KeyTable(capacity_hint=4)  # grows past the hint
    history: dict[int, list[int]] = {}
    last_seen: dict[int, tuple[int, int, float]] = {}
    for now in range(3000):
        key = int(rng.choice([0, 1, 2, 7, 40], p=[0.5, 0.2, 0.15, 0.1, 0.05]))
        size, kind, vol = int(rng.integers(0, 5000)), int(rng.integers(0, len(f.KIND_NAMES))), float(rng.random())
        table.access(key, now, size, kind, vol)
        history.setdefault(key, []).append(now)
        last_seen[key] = (size, kind, vol)
    ids = np.array(sorted(history))
    got = table.features(ids, 3100)
    assert got.shape == (len(ids), f.N_FEATURES) and got.dtype == np.float32
    assert len(f.FEATURE_NAMES) == f.N_FEATURES
    for row, key in zip(got, ids):
        np.testing.assert_allclose(row, reference(history[key], 3100, *last_seen[key]), rtol=2e-5, atol=2e-5)
    assert len(table) == len(ids) and 7 in table and 3 not in table


def test_remove_forgets_a_key_and_reuses_its_slot():
    table = f.KeyTable()
    for now, key in enumerate([1, 2, 1, 1, 2]):
        table.access(key, now, 10, 0, 0.0)
    table.remove(1)
    assert 1 not in table and len(table) == 1
    with pytest.raises(DataError, match="never seen"):
        table.features(np.array([1]), 10)
    table.access(5, 10, 3, 2, 0.0)  # takes the freed slot: a fresh history
    np.testing.assert_allclose(table.features(np.array([5]), 10)[0], reference([10], 10, 3, 2, 0.0), atol=1e-6)
    np.testing.assert_allclose(table.features(np.array([2]), 10)[0], reference([1, 4], 10, 10, 0, 0.0), atol=1e-5)


def test_unknown_kinds_count_as_other_and_bad_ids_are_refused():
    table = f.KeyTable()
    table.access(0, 0, 1, 99, 0.0)
    assert table.features(np.array([0]), 0)[0, -1] == 1.0  # OTHER is the last one-hot column
    with pytest.raises(DataError):
        table.access(-1, 1, 1, 0, 0.0)
    with pytest.raises(DataError, match="never seen"):
        table.features(np.array([10**6]), 1)
