"""A digest of what a run traded: its decisions, verdicts, orders, fills and final book, compared row
by row (README, "Event time"). Two runs on the same bars with the same models must give the same digest,
whatever their speed; `algo demo` prints it and `algo backtest --agents` prints the offline one.

Run-specific names are left out: the account (in order and fill ids, and in verdict ids) is not
part of any row. Decision ids are derived from the symbol, the bar and the signal ids, so they are
kept; orders and fills are named by the decision they come from.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Iterable, Mapping

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _us(ts) -> int:
    if isinstance(ts, int):
        return ts
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    delta = ts - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _num(value, places: int = 6) -> str:
    return f"{float(value):.{places}f}"


def decision_row(d: Mapping) -> list:
    return [d["symbol"], _us(d["ts"]), d["action"], _num(d["target_position"], 9), _num(d["agreement"], 9),
            [[v["agent"], v["signal_id"], v["action"], _num(v["confidence"], 9), _num(v["weight"], 9)]
             for v in d["votes"]]]


def verdict_row(v: Mapping) -> list:
    return [v["decision_id"], v["symbol"], _us(v["ts"]), v["verdict"], _num(v["requested_quantity"]),
            _num(v["approved_quantity"]), sorted(v["reason_codes"])]


def order_row(o: Mapping) -> list:
    return [o["decision_id"], o["symbol"], _us(o["ts"]), o["side"], _num(o["quantity"])]


def fill_row(f: Mapping, decision_of_order: Mapping[str, str]) -> list:
    return [decision_of_order.get(f["order_id"], "?"), f["symbol"], _us(f["ts"]), f["side"], _num(f["quantity"]),
            _num(f["price"]), _num(f["fee"])]


def book_row(book: Mapping | None) -> list:
    if not book:
        return []
    return [_num(book["cash"], 4), _num(book["realised_pnl"], 4), _num(book["fees"], 4),
            sorted([s, _num(p["quantity"]), _num(p["avg_price"])] for s, p in book["positions"].items())]


def _hash(rows) -> str:
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trading_rows(decisions: Iterable[Mapping], verdicts: Iterable[Mapping], orders: Iterable[Mapping],
                 fills: Iterable[Mapping], book: Mapping | None = None) -> dict[str, list]:
    """The run's rows by part, each part sorted, so arrival order does not matter."""
    orders = list(orders)
    decision_of_order = {o["order_id"]: o["decision_id"] for o in orders}
    return {
        "decisions": sorted(decision_row(d) for d in decisions),
        "verdicts": sorted(verdict_row(v) for v in verdicts),
        "orders": sorted(order_row(o) for o in orders),
        "fills": sorted(fill_row(f, decision_of_order) for f in fills),
        "book": book_row(book),
    }


def trading_digest(decisions: Iterable[Mapping], verdicts: Iterable[Mapping], orders: Iterable[Mapping],
                   fills: Iterable[Mapping], book: Mapping | None = None) -> dict:
    """{"digest", "decisions", "verdicts", "orders", "fills", "parts": {name: digest}}: only what was
    decided and traded counts."""
    parts = trading_rows(decisions, verdicts, orders, fills, book)
    hashes = {name: _hash(rows) for name, rows in parts.items()}
    return {"digest": _hash(hashes), **{name: len(rows) for name, rows in parts.items() if name != "book"},
            "parts": hashes}
