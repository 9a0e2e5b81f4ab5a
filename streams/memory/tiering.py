"""The Memory agent's decisions as plain data: when to act (Redis's used memory against the
watermarks), which resident keys to offer the policy (the LRU tail plus a uniform sample, as the
simulator proposes them, plus keys found in Redis that the agent has never seen), and which of them to demote or drop
given the policy's scores. No I/O here: streams.memory.agents and benchmarks/tiering.py feed it
numbers and carry out what it returns, so both run the very same logic.

Also the volatility of a symbol as the agent and the recorder define it: the standard deviation of the
log returns of its last VOLATILITY_BARS bars."""
from __future__ import annotations

import itertools
import math
import random
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from streams.memory import keys
from streams.memory.features import KeyTable
from streams.memory.simulator import CANDIDATES_DEFAULT, DEFAULT_QUEUE, TAIL_FRACTION

VOLATILITY_BARS = 20  # log returns per volatility estimate (21 closes)
# Redis's bookkeeping per string key beyond the value (dict entry, key sds, robj), roughly: what a
# demotion frees on top of the value's bytes, for the plan; the agent re-reads used_memory anyway.
KEY_OVERHEAD_BYTES = 64
DEMOTE = "demote"
DROP = "drop"


def volatility(closes: Sequence[float]) -> float:
    """Sample standard deviation of the log returns of the last VOLATILITY_BARS + 1 closes; 0 with
    fewer than two returns (or a non-positive close)."""
    recent = np.asarray(closes[-(VOLATILITY_BARS + 1):], dtype=np.float64)
    if recent.size < 3 or not (recent > 0).all():
        return 0.0
    value = float(np.std(np.diff(np.log(recent)), ddof=1))
    return value if math.isfinite(value) else 0.0


class SymbolVolatility:
    """The latest volatility per symbol, updated bar by bar."""

    def __init__(self) -> None:
        self._closes: dict[str, deque[float]] = {}
        self._value: dict[str, float] = {}

    def update(self, symbol: str, close: float) -> float:
        closes = self._closes.setdefault(symbol, deque(maxlen=VOLATILITY_BARS + 1))
        closes.append(float(close))
        self._value[symbol] = volatility(list(closes))
        return self._value[symbol]

    def get(self, symbol: str | None) -> float:
        return self._value.get(symbol, 0.0) if symbol is not None else 0.0

    def set(self, symbol: str, value: float) -> None:
        """A volatility known from elsewhere (a trace's volatility column, in benchmarks/tiering.py)."""
        self._value[symbol] = float(value)

    def __len__(self) -> int:
        return len(self._closes)


class ResidentKeys:
    """The keys the agent believes are in Redis, in least-recently-used order, with O(1) add, touch,
    remove and uniform sampling."""

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()  # oldest access first
        self._keys: list[str] = []
        self._index: dict[str, int] = {}

    def touch(self, key: str) -> None:
        """An access: the key is resident and the most recently used."""
        if key in self._index:
            self._order.move_to_end(key)
            return
        self._order[key] = None
        self._index[key] = len(self._keys)
        self._keys.append(key)

    def discard(self, key: str) -> None:
        position = self._index.pop(key, None)
        if position is None:
            return
        del self._order[key]
        last = self._keys.pop()
        if position < len(self._keys):  # move the last key into the hole
            self._keys[position] = last
            self._index[last] = position

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self):
        return iter(list(self._order))

    def proposals(self, count: int, rng: random.Random) -> list[str]:
        """Eviction candidates as the simulator proposes them (streams.memory.simulator): the LRU tail
        (TAIL_FRACTION of `count`) plus a uniform sample of all resident keys, without repeats."""
        if count >= len(self._keys):
            return list(self._order)
        tail = max(1, int(count * TAIL_FRACTION))
        chosen = list(itertools.islice(self._order, tail))
        chosen += rng.choices(self._keys, k=count - tail)  # uniform, with replacement, as the simulator samples
        return list(dict.fromkeys(chosen))


class _Lookup:
    """mapping[keys[i]] on demand: plan_batch reads the sizes and kinds of its few contenders only."""
    __slots__ = ("mapping", "keys")

    def __init__(self, mapping: dict, keys: Sequence[str]) -> None:
        self.mapping, self.keys = mapping, keys

    def __getitem__(self, i: int):
        return self.mapping[self.keys[i]]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Watermarks:
    """Act above high * maximum bytes; free down to low * maximum."""
    high: float
    low: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high <= 1:
            raise ValueError(f"watermarks need 0 < low < high <= 1, got low={self.low}, high={self.high}")

    def over_high(self, used: int, maximum: int) -> bool:
        return maximum > 0 and used > self.high * maximum

    def bytes_to_free(self, used: int, maximum: int) -> int:
        """How far used memory is above the low watermark (0 when under it)."""
        return max(0, math.ceil(used - self.low * maximum)) if maximum > 0 else 0


@dataclass(frozen=True)
class Candidate:
    key: str
    size: int          # the value's bytes, as the access log last saw them
    score: float       # the policy's: higher = evict first; math.inf for a key with no history
    delete: bool       # the policy judged it not worth keeping even cold (policy.should_delete)


@dataclass(frozen=True)
class Decision:
    key: str
    action: str        # DEMOTE (to Postgres) or DROP (from both tiers)
    score: float
    size: int


def choose_victims(candidates: Iterable[Candidate], bytes_to_free: int, *, max_victims: int,
                   overhead: int = KEY_OVERHEAD_BYTES) -> list[Decision]:
    """The highest-scored candidates (ties: the larger value, then the key, for a stable order) until
    their bytes cover `bytes_to_free` or `max_victims` are chosen; nothing when there is nothing to
    free. Each is dropped when the policy said delete, else demoted."""
    if bytes_to_free <= 0 or max_victims <= 0:
        return []
    ranked = sorted(candidates, key=lambda c: (-c.score, -c.size, c.key))
    chosen: list[Decision] = []
    freed = 0
    for candidate in ranked:
        if freed >= bytes_to_free or len(chosen) >= max_victims:
            break
        chosen.append(Decision(candidate.key, DROP if candidate.delete else DEMOTE, candidate.score, candidate.size))
        freed += candidate.size + overhead
    return chosen


def victims_per_batch(candidates: int) -> int:
    """How many victims one batch of scored candidates may give: as many as the simulator queues per
    batch of CANDIDATES_DEFAULT (DEFAULT_QUEUE), in proportion: the live agent keeps the selectivity
    the policy was evaluated with."""
    return max(1, candidates * DEFAULT_QUEUE // CANDIDATES_DEFAULT)


def plan_batch(keys: Sequence[str], sizes: Sequence[int], scores: np.ndarray, kinds: Sequence[int],
               should_delete: Callable[..., bool], bytes_to_free: int, *, candidates: int,
               unseen: Sequence[tuple[str, int]] = ()) -> list[Decision]:
    """One batch: the scored known keys plus `unseen` (key, size) pairs (found in Redis, never in the
    access log since the agent started: idle at least that long, so first in line, and demoted rather
    than deleted since nothing is known of them) -> the decisions."""
    limit = victims_per_batch(candidates)
    scores = np.asarray(scores, dtype=np.float64)
    # only keys scored at least the limit-th best can be chosen: judge (should_delete) just those
    if len(scores) > limit:
        kth = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        contenders = np.flatnonzero(scores >= kth).tolist()
    else:
        contenders = range(len(scores))
    pool = [Candidate(keys[i], int(sizes[i]), float(scores[i]),
                      bool(should_delete(float(scores[i]), int(kinds[i]), size=int(sizes[i])))) for i in contenders]
    pool += [Candidate(key, int(size), math.inf, False) for key, size in unseen]
    return choose_victims(pool, bytes_to_free, max_victims=limit)


class AccessState:
    """What the agent knows from the access log: per-key features (a KeyTable over dense ids), the
    keys resident in Redis in LRU order, their sizes and kinds, the virtual clock (accesses seen),
    each symbol's volatility (from market.bars) and the hit counts of GETs."""

    def __init__(self, capacity_hint: int = 4096) -> None:
        self.table = KeyTable(capacity_hint)
        self.ids: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self.resident = ResidentKeys()
        self.volatility = SymbolVolatility()
        self.now = 0
        self.gets = {"HOT": 0, "COLD": 0, "MISS": 0}

    def observe(self, key: str, op: str, tier: str, size: int, kind: str = "", symbol: str | None = None) -> None:
        """One CacheAccess. GET HOT/COLD and SET leave the key in Redis (the store admits what it
        reads cold); a GET MISS does only when it loaded a value (size > 0); DELETE removes it."""
        self.now += 1
        if op == "GET":
            self.gets[tier] = self.gets.get(tier, 0) + 1
        if op == "DELETE":
            self.resident.discard(key)
            return
        key_id = self.ids.setdefault(key, len(self.ids))
        kind_index = keys.kind_index(kind if kind in keys.KINDS else keys.kind_of(key))
        symbol = symbol if symbol is not None else keys.symbol_of(key)
        self.table.access(key_id, self.now, int(size), kind_index, self.volatility.get(symbol))
        self.sizes[key] = int(size)
        self.kinds[key] = kind_index
        if op == "SET" or tier != "MISS" or size > 0:
            self.resident.touch(key)
        else:
            self.resident.discard(key)

    def hit_ratio(self) -> float | None:
        total = sum(self.gets.values())
        return self.gets["HOT"] / total if total else None

    def knows(self, key: str) -> bool:
        return key in self.ids

    def batch(self, policy, rng: random.Random, candidates: int, bytes_to_free: int,
              unseen: Sequence[tuple[str, int]] = ()) -> tuple[list[Decision], int]:
        """One decision batch: proposals from the resident keys, scored by `policy` in one call.
        Returns the decisions and how many keys were scored."""
        proposed = self.resident.proposals(candidates, rng)
        if proposed:
            key_ids = np.fromiter((self.ids[k] for k in proposed), dtype=np.int64, count=len(proposed))
            scores = np.asarray(policy.score(self.table.features(key_ids, self.now)), dtype=np.float64)
        else:
            scores = np.empty(0)
        decisions = plan_batch(proposed, _Lookup(self.sizes, proposed), scores, _Lookup(self.kinds, proposed),
                               policy.should_delete, bytes_to_free, candidates=candidates, unseen=unseen)
        return decisions, len(proposed) + len(unseen)

    def evicted(self, decision: Decision) -> None:
        """The agent demoted or dropped the key: it is no longer in Redis."""
        self.resident.discard(decision.key)
