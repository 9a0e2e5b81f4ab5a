"""GET /v1/memory: what the dashboard's memory panel shows. Redis's used and max memory (asked
directly), and from Postgres agent_logs the Memory agent's latest counters (its "stats" logs: hit
ratio, demotions, drops) and its recent tiering rounds (which keys, which action, which score)."""
from __future__ import annotations

import json

import redis.asyncio as aioredis

from streams.errors import ServiceUnavailable
from streams.memory.tierer import AGENT, redis_memory

MEMORY_LOGS_SQL = """
SELECT ts, message, context FROM agent_logs
WHERE agent = %(agent)s AND context->>'kind' = %(kind)s
ORDER BY ts DESC LIMIT %(limit)s
"""
NUMBERS = ("gets_hot", "gets_cold", "gets_miss", "resident_keys", "demotions_total", "drops_total", "rounds_total",
           "used", "maxmemory", "demoted", "dropped", "scored", "batches", "used_before", "used_after")
LISTS = ("keys", "actions", "scores")
DECISION_KEYS_SHOWN = 20


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def _context(context) -> dict:
    context = json.loads(context) if isinstance(context, str) else dict(context or {})
    out = {}
    for name, value in context.items():
        if name in NUMBERS or name in ("hit_ratio", "decision_us_per_eviction", "seconds"):
            out[name] = _number(value)
        elif name in LISTS:
            try:
                out[name] = json.loads(value)[:DECISION_KEYS_SHOWN]
            except (TypeError, ValueError):
                out[name] = []
        else:
            out[name] = value
    return out


async def redis_usage(redis_url: str, fallback_maxmemory: int) -> dict:
    try:
        async with aioredis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3) as client:
            used, maximum = await redis_memory(client, fallback_maxmemory)
    except ServiceUnavailable as error:
        return {"used_bytes": None, "max_bytes": None, "error": str(error)}
    return {"used_bytes": used, "max_bytes": maximum, "error": None}


async def memory_panel(store, settings, limit: int) -> dict:
    """`store`: the bridge's Store (its `query`); StoreUnavailable propagates (503)."""
    stats = await store.query(MEMORY_LOGS_SQL, {"agent": AGENT, "kind": "stats", "limit": 1})
    rounds = await store.query(MEMORY_LOGS_SQL, {"agent": AGENT, "kind": "tiering", "limit": limit})
    latest = None
    if stats:
        latest = {"ts": stats[0]["ts"], **_context(stats[0]["context"])}
    decisions = [{"ts": row["ts"], "message": row["message"], **_context(row["context"])} for row in rounds]
    if latest is None and decisions:  # no stats log yet: the newest round carries the same counters
        latest = {k: v for k, v in decisions[0].items() if k not in LISTS}
    return {"redis": await redis_usage(settings.redis_client_url, settings.memory.maxmemory_bytes()), "agent": latest,
            "decisions": decisions}
