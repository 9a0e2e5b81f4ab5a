"""Row converters and idempotent upserts for the Postgres vault (sql/).

Each sink maps one topic's decoded records to rows of one table. Inserts are idempotent through the
table's natural key: a replayed message never creates a second row. Bars upsert (an idle-flushed
bar may later be re-emitted with more ticks); everything else is write-once.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Sequence

from streams.errors import PersistenceError


def _finite(record: dict, *fields: str) -> None:
    for name in fields:
        value = record[name]
        if value is not None and not math.isfinite(value):
            raise PersistenceError(f"{name} is {value}; the vault stores finite numbers only")


def bar_row(r: dict) -> tuple:
    _finite(r, "open", "high", "low", "close", "volume")
    return (r["symbol"], r["interval"], r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["tick_count"])


def signal_row(r: dict) -> tuple:
    _finite(r, "confidence")
    return (r["signal_id"], r["agent"], r["symbol"], r["ts"], r["action"], r["confidence"], r["rationale"],
            r["model_version"], list(r["input_refs"]))


def decision_row(r: dict) -> tuple:
    _finite(r, "target_position", "agreement")
    return (r["decision_id"], r["symbol"], r["ts"], r["action"], r["target_position"], r["agreement"],
            json.dumps(r["votes"]), r["rationale"])


def verdict_row(r: dict) -> tuple:
    _finite(r, "requested_quantity", "approved_quantity")
    return (r["verdict_id"], r["decision_id"], r["symbol"], r["ts"], r["verdict"], r["requested_quantity"],
            r["approved_quantity"], list(r["reason_codes"]), json.dumps(r["limits_checked"]))


def order_row(r: dict) -> tuple:
    _finite(r, "quantity", "limit_price")
    return (r["order_id"], r["decision_id"], r["account"], r["symbol"], r["ts"], r["side"], r["quantity"],
            r["order_type"], r["limit_price"])


def fill_row(r: dict) -> tuple:
    _finite(r, "quantity", "price", "fee")
    return (r["fill_id"], r["order_id"], r["account"], r["symbol"], r["ts"], r["side"], r["quantity"], r["price"], r["fee"])


def log_row(r: dict) -> tuple:
    return (r["log_id"], r["agent"], r["ts"], r["level"], r["message"], json.dumps(r["context"]))


def news_row(r: dict) -> tuple:
    return (r["id"], r["ts"], r["source"], r["headline"], r["body"], list(r["symbols"]), r["url"])


def _insert(table: str, columns: str, key: str, update: str | None = None) -> str:
    names = [c.strip() for c in columns.split(",")]
    placeholders = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders}) ON CONFLICT ({key}) "
    if update is None:
        return sql + "DO NOTHING"
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in update.split(","))
    return sql + f"DO UPDATE SET {sets}, updated_at = now()"


@dataclass(frozen=True)
class Sink:
    topic: str
    table: str
    sql: str
    to_row: Callable[[dict], tuple]


SINKS: tuple[Sink, ...] = (
    Sink("market.bars", "market_data",
         _insert("market_data", "symbol, interval, ts, open, high, low, close, volume, tick_count",
                 "symbol, interval, ts", "open,high,low,close,volume,tick_count"),
         bar_row),
    Sink("agent.signals", "signals",
         _insert("signals", "signal_id, agent, symbol, ts, action, confidence, rationale, model_version, input_refs",
                 "signal_id"),
         signal_row),
    Sink("consensus.decisions", "decisions",
         _insert("decisions", "decision_id, symbol, ts, action, target_position, agreement, votes, rationale",
                 "decision_id"),
         decision_row),
    Sink("risk.verdicts", "risk_verdicts",
         _insert("risk_verdicts", "verdict_id, decision_id, symbol, ts, verdict, requested_quantity, "
                 "approved_quantity, reason_codes, limits_checked", "verdict_id"),
         verdict_row),
    Sink("orders", "orders",
         _insert("orders", "order_id, decision_id, account, symbol, ts, side, quantity, order_type, limit_price",
                 "order_id"),
         order_row),
    Sink("fills", "fills",
         _insert("fills", "fill_id, order_id, account, symbol, ts, side, quantity, price, fee", "fill_id"),
         fill_row),
    Sink("agent.logs", "agent_logs",
         _insert("agent_logs", "log_id, agent, ts, level, message, context", "log_id"), log_row),
    Sink("news.items", "news",
         _insert("news", "id, ts, source, headline, body, symbols, url", "id"), news_row),
)
SINK_BY_TOPIC = {sink.topic: sink for sink in SINKS}


def rows_or_errors(sink: Sink, records: Sequence[dict]) -> tuple[list[tuple[int, tuple]], list[tuple[int, Exception]]]:
    """Converts records to rows; returns (index, row) pairs and (index, error) pairs."""
    rows, errors = [], []
    for index, record in enumerate(records):
        try:
            rows.append((index, sink.to_row(record)))
        except (PersistenceError, KeyError, TypeError, ValueError) as error:
            errors.append((index, error if isinstance(error, PersistenceError) else PersistenceError(repr(error))))
    return rows, errors
