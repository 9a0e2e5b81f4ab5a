"""The paper broker, as pure functions: approved verdicts become orders, orders fill at the open
of the first bar after the decision, with the backtester's cost model (risk_core/README.md):
buy at open x (1 + slippage), sell at open x (1 - slippage), fee = quantity x fill price x fee rate.
The book (cash, positions, PnL) follows the fills through streams.broker.book.
"""
from __future__ import annotations

from datetime import datetime

from streams.broker.book import apply_fill
from streams.bus.ids import derived_id, remember_id
from streams.market.bars import from_micros, to_micros
from streams.settings import BrokerSettings  # defined with the one Settings (settings.broker)

RECENT_BARS = 64
FILL_IDS = "fill_ids"  # the book's recent fill ids, kept in the book itself (see book_fill)


def order_id_for(decision_id: str, account: str) -> str:
    return derived_id("order", decision_id, account)


def fill_id_for(order_id: str) -> str:
    return derived_id("fill", order_id)


def book_fill(book: dict, fill: dict) -> dict | None:
    """The book after `fill`, or None when this book has applied it already (a fill re-read or
    re-made after a restart). The fill's id is remembered in the same dict, one table write."""
    marked = remember_id(book, FILL_IDS, fill["fill_id"])
    return None if marked is None else apply_fill(marked, fill)


def already_placed(order: dict, open_orders: list[dict] | None, book: dict) -> bool:
    """True when the broker has taken this order before: it is still open, or its fill is in the
    book. Asked of the state the order changed, so the answer cannot disagree with it after a crash."""
    return (any(o["order_id"] == order["order_id"] for o in open_orders or ())
            or fill_id_for(order["order_id"]) in (book.get(FILL_IDS) or ()))


def order_from_verdict(verdict: dict, account: str) -> dict | None:
    """The market Order an APPROVE/RESIZE verdict allows; None for a rejection or no change."""
    quantity = float(verdict["approved_quantity"])
    if verdict["verdict"] == "REJECT" or quantity == 0.0:
        return None
    # a decision gives at most one order per account, however often its verdict is read or re-sent
    return {"order_id": order_id_for(verdict["decision_id"], account), "decision_id": verdict["decision_id"],
            "account": account,
            "symbol": verdict["symbol"], "ts": verdict["ts"], "side": "BUY" if quantity > 0 else "SELL",
            "quantity": abs(quantity), "order_type": "MARKET", "limit_price": None}


def remember_bar(recent: list[dict] | None, bar: dict) -> list[dict]:
    """The symbol's recent bars (ts_us, open, close), oldest first, a re-emitted bar replacing itself."""
    entry = {"ts_us": to_micros(bar["ts"]), "open": float(bar["open"]), "close": float(bar["close"])}
    kept = [b for b in (recent or []) if b["ts_us"] != entry["ts_us"]]
    return sorted(kept + [entry], key=lambda b: b["ts_us"])[-RECENT_BARS:]


def order_time_us(order: dict) -> int:
    """The order's time in µs. An open order recovered from its table's changelog comes back from
    JSON with its time as ISO text, not a datetime."""
    ts = order["ts"]
    return to_micros(datetime.fromisoformat(ts) if isinstance(ts, str) else ts)


def is_stale(order: dict, recent: list[dict]) -> bool:
    """True when the bars around the order's time have left the recent window, so its next bar can
    no longer be told apart (the broker's bar stream ran far ahead of the verdicts)."""
    return len(recent) >= RECENT_BARS and recent[0]["ts_us"] > order_time_us(order)


def fill_bar(order: dict, recent: list[dict]) -> dict | None:
    """The bar right after the order's time, where a market order fills; None if not known yet."""
    if is_stale(order, recent):
        return None
    order_us = order_time_us(order)
    return next((b for b in recent if b["ts_us"] > order_us), None)


def fill_record(order: dict, bar: dict, settings: BrokerSettings) -> dict:
    slip, fee_rate = settings.slippage_bps / 1e4, settings.fee_bps / 1e4
    price = bar["open"] * (1 + slip if order["side"] == "BUY" else 1 - slip)
    return {"fill_id": fill_id_for(order["order_id"]), "order_id": order["order_id"], "account": order["account"],
            "symbol": order["symbol"], "ts": from_micros(bar["ts_us"]), "side": order["side"],
            "quantity": order["quantity"], "price": price, "fee": order["quantity"] * price * fee_rate}
