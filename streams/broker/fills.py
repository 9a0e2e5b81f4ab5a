"""The paper broker, as pure functions: approved verdicts become orders, orders fill at the open
of the first bar after the decision, with the backtester's cost model (risk_core/README.md):
buy at open x (1 + slippage), sell at open x (1 - slippage), fee = quantity x fill price x fee rate.
The book (cash, positions, PnL) follows the fills through streams.risk.rules.apply_fill.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from streams.market.bars import from_micros, to_micros
from streams.errors import ConfigError
from streams.risk.rules import equity

RECENT_BARS = 64


@dataclass(frozen=True)
class BrokerSettings:
    account: str = "paper"
    fee_bps: float = 1.0
    slippage_bps: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "BrokerSettings":
        try:
            return cls(account=env.get("RISK_ACCOUNT", cls.account),
                       fee_bps=float(env.get("BROKER_FEE_BPS", cls.fee_bps)),
                       slippage_bps=float(env.get("BROKER_SLIPPAGE_BPS", cls.slippage_bps)))
        except ValueError as error:
            raise ConfigError(f"BROKER_FEE_BPS / BROKER_SLIPPAGE_BPS must be numbers ({error})") from None


def order_from_verdict(verdict: dict, account: str) -> dict | None:
    """The market Order an APPROVE/RESIZE verdict allows; None for a rejection or no change."""
    quantity = float(verdict["approved_quantity"])
    if verdict["verdict"] == "REJECT" or quantity == 0.0:
        return None
    return {"order_id": str(uuid.uuid4()), "decision_id": verdict["decision_id"], "account": account,
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
    return {"fill_id": str(uuid.uuid4()), "order_id": order["order_id"], "account": order["account"],
            "symbol": order["symbol"], "ts": from_micros(bar["ts_us"]), "side": order["side"],
            "quantity": order["quantity"], "price": price, "fee": order["quantity"] * price * fee_rate}


def mark(state: dict, symbol: str, close: float) -> dict:
    if symbol not in state["positions"]:
        return state
    positions = {**state["positions"], symbol: {**state["positions"][symbol], "last_price": float(close)}}
    return {**state, "positions": positions}


def book_rows(state: dict) -> tuple[tuple, list[tuple]]:
    """(accounts row, positions rows) for sql/002_paper_book.sql."""
    account_equity = equity(state)
    unrealised = {s: p["quantity"] * (p["last_price"] - p["avg_price"]) for s, p in state["positions"].items()}
    gross = sum(abs(p["quantity"]) * p["last_price"] for p in state["positions"].values())
    net = sum(p["quantity"] * p["last_price"] for p in state["positions"].values())
    scale = account_equity if account_equity > 0 else float("inf")
    account = (state["account"], state["cash"], account_equity, state["realised_pnl"], sum(unrealised.values()),
               state["fees"], gross / scale, net / scale)
    positions = [(state["account"], s, p["quantity"], p["avg_price"], p["last_price"], unrealised[s])
                 for s, p in state["positions"].items()]
    return account, positions
