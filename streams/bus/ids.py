"""Ids of derived events (signals, decisions, verdicts, orders, fills): uuid5 over their inputs.

An event computed from other events gets the same id every time it is computed from the same
inputs, so a worker that re-processes messages after a crash (Faust is at-least-once: offsets are
committed every few seconds) re-creates the same ids, and the idempotent sinks and the broker drop
the repeat instead of booking a second order or fill. Kafka may carry a repeat; the vault never does.

What goes into each id (see the record builders): a signal = agent, symbol, interval, bar time,
model version; a decision = symbol, time, the signal ids it counted; a verdict = decision id +
account; an order = decision id + account (a decision gives at most one order per account); a
fill = order id (an order fills once).
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Sequence

# The project's uuid5 namespace: never change it, or ids computed before and after stop matching.
NAMESPACE = uuid.UUID("5fed78d9-dee3-4d52-976c-f51c1cef0186")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# How many processed ids a table keeps to recognise a repeat. A repeat comes from the messages after
# the last committed offset, i.e. the last few seconds of work; this leaves a wide margin.
RECENT_IDS = 128


def _part(value) -> str | int | float:
    if isinstance(value, datetime):  # one instant, one text, whatever its zone (naive = UTC)
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        delta = aware - _EPOCH
        return f"t{(delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds}"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"derived_id parts are str, int, float or datetime, not {type(value).__name__}")
    return value


def derived_id(kind: str, *parts) -> str:
    """The id of a `kind` event derived from `parts` (upstream ids, symbol, time, account...)."""
    # JSON keeps the parts apart unambiguously ("a", "b|c" differs from "a|b", "c")
    name = json.dumps([kind, *(_part(p) for p in parts)], separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(NAMESPACE, name))


def remember_id(state: dict, field: str, event_id: str, keep: int = RECENT_IDS) -> dict | None:
    """`state` with `event_id` added to its recent ids under `field` (the last `keep`), or None
    when it is already there: the event was processed before and must not be applied again.
    Keeping the ids inside the state they guard makes "applied" and "remembered" one table write."""
    recent: Sequence[str] = state.get(field) or ()
    if event_id in recent:
        return None
    return {**state, field: [*recent, event_id][-keep:]}
