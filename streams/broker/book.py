"""The paper book (cash, positions, average prices, realised PnL, fees) as pure functions: the one
copy used by the risk agent and the broker.

State per paper account, a JSON-able dict kept in a Faust table:
  {"account", "cash", "realised_pnl", "fees", "day", "start_of_day_equity", "peak_equity",
   "positions": {symbol: {"quantity", "avg_price", "last_price"}}, "order_ts": [seconds, ...]}
("day", "start_of_day_equity" and "order_ts" are the risk agent's: judge() keeps them up to date.)

Why two agents fold the same fills with the same function: they run in different workers, and a
Faust table is only readable in the worker that owns it. The risk agent needs the book as of each
decision's time (streams.risk.sequencer): it fills its own approved orders with the broker's fill
function (streams.broker.fills.fill_record) at their next bar's open and folds them here, so it never
waits for the fills topic. The broker folds each fill it sends and marks positions at each close, to
write accounts/positions to Postgres. Both start from `new_portfolio` with the same account and cash
(RISK_ACCOUNT, RISK_INITIAL_CASH) and apply the same fills (book_fill applies a fill id once), so they
agree on cash, positions, average prices, realised PnL and fees for every fill before the risk agent's
last judged decision; prices differ only in between (each marks with the closes it has used).
"""
from __future__ import annotations

import math


def new_portfolio(account: str, initial_cash: float) -> dict:
    return {"account": account, "cash": float(initial_cash), "realised_pnl": 0.0, "fees": 0.0,
            "day": None, "start_of_day_equity": float(initial_cash), "peak_equity": float(initial_cash),
            "positions": {}, "order_ts": []}


def equity(state: dict) -> float:
    # fsum: exact, so the order the positions were opened in cannot change the last digit
    return math.fsum([state["cash"], *(p["quantity"] * p["last_price"] for p in state["positions"].values())])


def apply_fill(state: dict, fill: dict) -> dict:
    """Cash, position, average price, realised PnL and fees after one Fill."""
    signed = float(fill["quantity"]) * (1 if fill["side"] == "BUY" else -1)
    price, fee = float(fill["price"]), float(fill["fee"])
    positions = dict(state["positions"])
    position = dict(positions.get(fill["symbol"], {"quantity": 0.0, "avg_price": 0.0, "last_price": price}))
    old = position["quantity"]
    realised = 0.0
    if old * signed < 0:  # closing (part of) the position
        closed = min(abs(signed), abs(old)) * (1 if old > 0 else -1)
        realised = closed * (price - position["avg_price"])
    new = old + signed
    if abs(new) < 1e-12:
        new, avg = 0.0, 0.0
    elif old == 0 or old * new < 0:  # opened, or reversed through zero
        avg = price
    elif abs(new) > abs(old):  # added to the position
        avg = (position["avg_price"] * old + price * signed) / new
    else:
        avg = position["avg_price"]
    position.update(quantity=new, avg_price=avg, last_price=price)
    if new == 0.0:
        positions.pop(fill["symbol"], None)
    else:
        positions[fill["symbol"]] = position
    updated = {**state, "positions": positions, "cash": state["cash"] - signed * price - fee,
               "realised_pnl": state["realised_pnl"] + realised, "fees": state["fees"] + fee}
    updated["peak_equity"] = max(updated["peak_equity"], equity(updated))
    return updated


def mark(state: dict, symbol: str, close: float) -> dict:
    """The book with `symbol`'s position valued at `close` (unchanged when not held)."""
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
