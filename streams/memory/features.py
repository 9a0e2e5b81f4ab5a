"""Per-key online state of the eviction policy: recency, frequency, recent inter-access gaps,
exponentially decayed counts, size, kind and the volatility of the key's symbol.

One KeyTable serves the trace simulator (one `access` per request) and the live agent (one per
CacheAccess record), so both compute the very features the policy was trained on. Time is virtual:
`now` counts accesses, which makes features independent of wall-clock speed and of the trace's
time unit. The state of a key is one row of a flat `array.array` of doubles (a scalar write there
costs a fraction of a numpy item write, and the per-request update is the simulator's hot path);
`features` gathers the rows of a batch of candidates through one zero-copy numpy view.
"""
from __future__ import annotations

import math
from array import array

import numpy as np

from streams.errors import DataError
from streams.memory import keys

GAP_HISTORY = 8  # inter-access gaps kept per key, most recent first
HALF_LIVES = (100.0, 1_000.0, 10_000.0, 100_000.0)  # of the decayed access counters, in accesses
NO_GAP = 1e7  # the gap of a key that has not had one yet: "longer than anything seen"
KIND_NAMES = (*keys.KINDS, keys.OTHER)  # one-hot order = keys.kind_index

FEATURE_NAMES: tuple[str, ...] = (
    "log_age", "log_count",
    *(f"log_gap_{i + 1}" for i in range(GAP_HISTORY)),
    "log_mean_gap",
    *(f"log_decayed_count_h{int(h)}" for h in HALF_LIVES),
    "log_size", "log_volatility",
    *(f"kind_{name}" for name in KIND_NAMES),
)
N_FEATURES = len(FEATURE_NAMES)
N_NUMERIC = N_FEATURES - len(KIND_NAMES)  # the log1p'd columns, before the one-hot kind

# the row of a key, laid out like the numeric features so that one slice gathers them: last access
# (-> age), count, gaps (most recent first), mean gap, decayed counts (at the last access), size,
# volatility; then kind and first access
_LAST, _COUNT = 0, 1
_GAP = 2
_MEAN_GAP = _GAP + GAP_HISTORY
_DECAYED = _MEAN_GAP + 1
_SIZE = _DECAYED + len(HALF_LIVES)
_VOLATILITY = _SIZE + 1
_KIND = _VOLATILITY + 1
_FIRST = _KIND + 1
WIDTH = _FIRST + 1
assert _VOLATILITY + 1 == N_NUMERIC
_RATES = np.log(2.0) / np.asarray(HALF_LIVES)
_ONE_HOT = np.eye(len(KIND_NAMES), dtype=np.float32)


class KeyTable:
    """State per key id (any non-negative int; callers map their keys to small dense ids)."""

    def __init__(self, capacity_hint: int = 1024):
        self._slot_of = array("q")  # key id -> slot, -1 when absent
        self._free: list[int] = []
        self._rows = array("d")  # WIDTH doubles per slot
        self._fresh = array("d", [0.0] * WIDTH)
        for j in range(GAP_HISTORY + 1):  # the gaps and the mean gap
            self._fresh[_GAP + j] = NO_GAP
        for j in range(len(HALF_LIVES)):
            self._fresh[_DECAYED + j] = 1.0
        self._fresh[_COUNT] = 1.0
        self._decay = tuple(float(rate) for rate in _RATES)
        self._len = 0
        self._reserve_ids(capacity_hint)

    def _reserve_ids(self, n: int) -> None:
        if n > len(self._slot_of):
            self._slot_of.extend([-1] * (max(n, 2 * len(self._slot_of)) - len(self._slot_of)))

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key_id: int) -> bool:
        return 0 <= key_id < len(self._slot_of) and self._slot_of[key_id] >= 0

    def access(self, key_id: int, now: int, size: int, kind: int, volatility: float) -> None:
        """Record one access of `key_id` at virtual time `now` (non-decreasing across calls)."""
        if not 0 <= key_id < len(self._slot_of):
            if key_id < 0:
                raise DataError(f"key ids are non-negative, got {key_id}")
            self._reserve_ids(key_id + 1)
        rows = self._rows
        slot = self._slot_of[key_id]
        if slot < 0:
            if self._free:
                slot = self._free.pop()
                base = slot * WIDTH
                rows[base:base + WIDTH] = self._fresh
            else:
                slot = len(rows) // WIDTH
                base = slot * WIDTH
                rows.extend(self._fresh)
            self._slot_of[key_id] = slot
            self._len += 1
            rows[base + _FIRST] = now
        else:
            base = slot * WIDTH
            gap = now - rows[base + _LAST]
            count = rows[base + _COUNT]
            rows[base + _COUNT] = count + 1.0
            rows[base + _MEAN_GAP] = (now - rows[base + _FIRST]) / count
            rows[base + _GAP + 1:base + _GAP + GAP_HISTORY] = rows[base + _GAP:base + _GAP + GAP_HISTORY - 1]
            rows[base + _GAP] = gap
            at = base + _DECAYED
            for rate in self._decay:
                rows[at] = rows[at] * math.exp(-rate * gap) + 1.0
                at += 1
        rows[base + _LAST] = now
        rows[base + _SIZE] = size
        rows[base + _KIND] = kind if 0 <= kind < len(KIND_NAMES) else len(KIND_NAMES) - 1
        rows[base + _VOLATILITY] = volatility if volatility > 0.0 else 0.0

    def remove(self, key_id: int) -> None:
        """Forget a key (the live agent calls this when a key leaves both tiers)."""
        if key_id not in self:
            return
        self._free.append(self._slot_of[key_id])
        self._slot_of[key_id] = -1
        self._len -= 1

    def last_access(self, key_id: int) -> int:
        return int(self._rows[self._slot_of[key_id] * WIDTH + _LAST])

    def last_accesses(self, key_ids: np.ndarray) -> np.ndarray:
        return self._gather(key_ids)[:, _LAST].astype(np.int64)

    def _gather(self, key_ids: np.ndarray) -> np.ndarray:
        key_ids = np.asarray(key_ids, dtype=np.int64)
        slot_of = np.frombuffer(self._slot_of, dtype=np.int64)
        try:
            slots = slot_of[key_ids]
        except IndexError:
            raise DataError("features asked for a key id the table has never seen") from None
        if len(slots) and (slots.min() < 0 or key_ids.min() < 0):
            raise DataError("features asked for a key id the table has never seen (or removed)")
        return np.frombuffer(self._rows, dtype=np.float64).reshape(-1, WIDTH)[slots]

    def features(self, key_ids: np.ndarray, now: int) -> np.ndarray:
        """(n, N_FEATURES) float32 for `key_ids` at virtual time `now` (>= their last access)."""
        raw = self._gather(key_ids)
        numeric = raw[:, :N_NUMERIC]  # a copy: the gather made one
        age = now - numeric[:, _LAST]
        numeric[:, _LAST] = age
        numeric[:, _DECAYED:_SIZE] *= np.exp(np.multiply.outer(-age, _RATES))
        out = np.empty((raw.shape[0], N_FEATURES), dtype=np.float32)
        np.log1p(numeric, out=out[:, :N_NUMERIC], casting="same_kind")  # all >= 0: access() clamps volatility
        out[:, N_NUMERIC:] = _ONE_HOT[raw[:, _KIND].astype(np.int64)]
        return out
