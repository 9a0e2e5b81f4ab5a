"""Cache keys: `<kind>:<part>:<part>...`. The kind (the prefix) and, for kinds that belong to a
market symbol, the symbol (the first part) are features of the eviction policy, so every reader of
the store names its keys through `cache_key`."""
from __future__ import annotations

from streams.errors import DataError

# kind -> (belongs to a symbol?, what recomputing a deleted value costs, relative to a cold read)
KINDS: dict[str, tuple[bool, float]] = {
    "bars": (True, 2.0),         # the bridge's recent bars of a symbol (a Postgres range scan)
    "decisions": (True, 2.0),    # the bridge's recent consensus decisions
    "positions": (False, 2.0),   # the bridge's positions of an account
    "backtest": (True, 20.0),    # a risk-agent backtest result, keyed by request (the C++ engine reruns)
    "retrieval": (True, 10.0),   # the analyst's as-of news retrieval (an HNSW query)
    "embedding": (False, 30.0),  # a news item's MiniLM embedding (a model forward pass)
    "features": (True, 5.0),     # an agent's feature window
}
OTHER = "other"  # keys of foreign traces, or with a prefix that is not a kind
OTHER_COST = 1.0
SEPARATOR = ":"


def cache_key(kind: str, *parts: object) -> str:
    """The key of a value of `kind`; parts are joined with ':' (a part may not contain one)."""
    if kind not in KINDS:
        raise DataError(f"unknown cache kind {kind!r}: use one of {', '.join(sorted(KINDS))}")
    texts = [str(part) for part in parts]
    if not texts or any(SEPARATOR in text or not text for text in texts):
        raise DataError(f"cache key parts must be non-empty and free of {SEPARATOR!r}: {texts!r}")
    return SEPARATOR.join([kind, *texts])


def kind_of(key: str) -> str:
    kind = key.partition(SEPARATOR)[0]
    return kind if kind in KINDS and SEPARATOR in key else OTHER


def symbol_of(key: str) -> str | None:
    """The symbol a key belongs to: the first part after the kind, for kinds that have one."""
    kind = kind_of(key)
    if kind == OTHER or not KINDS[kind][0]:
        return None
    return key.split(SEPARATOR, 2)[1]


def recompute_cost(kind: str) -> float:
    return KINDS[kind][1] if kind in KINDS else OTHER_COST


def kind_index(kind: str) -> int:
    """A stable small integer per kind (OTHER last), for one-hot features."""
    names = list(KINDS)
    return names.index(kind) if kind in KINDS else len(names)
