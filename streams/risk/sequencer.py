"""The Risk agent's event-time order: decisions are judged in time order over all symbols, each
against the book as of its time (README, "Event time"). Pure functions on JSON-able data.

The book as of a decision at time t:
  - fills: every order approved before t fills at the open of its symbol's next bar, with the
    broker's costs (streams.broker.fills, the function the broker itself uses); the fills before t
    are applied, in time order, none after;
  - orders approved before t and not filled by then count as held when the decision is sized;
  - positions are valued at each symbol's last close before t, so every decision at t sees the same
    book and decisions of the same moment commute;
  - the order is priced at the decision's own bar close, its volatility from returns up to it.
A decision at t is judged once (a) every bar before t of every symbol is known (`horizon_us`, which
the agents layer moves on from the ticks -> bars barrier, streams.bus.progress), (b) its own bar is
known, or a barrier round that began after it came has passed ("settled": its bar will not come; it is
rejected for want of a price) and (c) every symbol's decisions on its bars before t are judged (the
consensus decides every bar). Ties at t go by symbol, then decision id.

State per account: {"book": the paper book (streams.broker.book), "judged": {symbol: bar µs},
"open_orders": [Order records with "ts_us"], "horizon_us"}. Pending decisions and the bars are kept
apart (a mapping and a BarHistory) because they grow and shrink one item at a time.
"""
from __future__ import annotations

import bisect
from typing import AbstractSet as Set, Mapping

import risk_core as rc
from streams.broker.book import new_portfolio
from streams.broker.fills import book_fill, fill_record, order_from_verdict
from streams.bus.ids import derived_id, remember_id
from streams.errors import AlgoError
from streams.market.bars import from_micros, to_micros
from streams.risk.rules import RETURNS_WINDOW, judge
from streams.settings import BrokerSettings, RiskSettings

DECISION_IDS = "decision_ids"  # the book's recently judged decisions


class BarHistory:
    """Each symbol's bars (time µs -> open, close), sorted by time."""

    def __init__(self) -> None:
        self._times: dict[str, list[int]] = {}
        self._prices: dict[str, dict[int, tuple[float, float]]] = {}

    def add(self, symbol: str, ts_us: int, open_: float, close: float) -> None:
        times = self._times.setdefault(symbol, [])
        prices = self._prices.setdefault(symbol, {})
        if ts_us not in prices:
            bisect.insort(times, ts_us)
        prices[ts_us] = (float(open_), float(close))

    def symbols(self) -> list[str]:
        return sorted(self._times)

    def has(self, symbol: str, ts_us: int) -> bool:
        return ts_us in self._prices.get(symbol, {})

    def close_at(self, symbol: str, ts_us: int) -> float | None:
        bar = self._prices.get(symbol, {}).get(ts_us)
        return None if bar is None else bar[1]

    def next_after(self, symbol: str, ts_us: int) -> dict | None:
        """The first bar after `ts_us`: {"ts_us", "open", "close"}, or None."""
        times = self._times.get(symbol, [])
        i = bisect.bisect_right(times, ts_us)
        if i == len(times):
            return None
        open_, close = self._prices[symbol][times[i]]
        return {"ts_us": times[i], "open": open_, "close": close}

    def closes_through(self, symbol: str, ts_us: int, count: int) -> list[float]:
        """The last `count` closes at or before `ts_us`, oldest first."""
        times = self._times.get(symbol, [])
        i = bisect.bisect_right(times, ts_us)
        return [self._prices[symbol][t][1] for t in times[max(0, i - count):i]]

    def unjudged_before(self, symbol: str, judged_us: int | None, before_us: int) -> bool:
        """Whether the symbol has a bar after `judged_us` and before `before_us`."""
        times = self._times.get(symbol, [])
        i = bisect.bisect_right(times, judged_us) if judged_us is not None else 0
        return i < len(times) and times[i] < before_us

    def prune(self, before_us: int, keep: int) -> list[tuple[str, int]]:
        """Forgets all but the last `keep` bars before `before_us` of each symbol; returns what went."""
        gone = []
        for symbol, times in self._times.items():
            i = bisect.bisect_left(times, before_us)
            for ts_us in times[:max(0, i - keep)]:
                del self._prices[symbol][ts_us]
                gone.append((symbol, ts_us))
            del times[:max(0, i - keep)]
        return gone


def new_state(settings: RiskSettings) -> dict:
    return {"book": new_portfolio(settings.account, settings.initial_cash), "judged": {}, "open_orders": [],
            "horizon_us": None}


def pending_entry(decision: dict) -> dict:
    """A ConsensusDecision as kept while it waits: JSON-able (time in µs)."""
    return {**decision, "ts": None, "ts_us": to_micros(decision["ts"])}


def _order_key(decision: dict) -> tuple:
    return decision["ts_us"], decision["symbol"], decision["decision_id"]


def is_judged(state: dict, decision_id: str) -> bool:
    return decision_id in (state["book"].get(DECISION_IDS) or ())


def next_judgeable(state: dict, pending: Mapping[str, dict], history: BarHistory,
                   silent: Set[str] = frozenset()) -> dict | None:
    """The pending decision to judge now, or None when the earliest one must wait. Symbols in
    `silent` (no decision of theirs has come for RISK_MAX_WAIT_S: the consensus is down, or a
    publisher skipped bars) are not waited for."""
    if not pending:
        return None
    decision = min(pending.values(), key=_order_key)
    ts_us = decision["ts_us"]
    if state["horizon_us"] is None or state["horizon_us"] < ts_us:
        return None
    if not history.has(decision["symbol"], ts_us) and not decision.get("settled"):
        return None  # its bar is on the way (settled: a round found every bar published before it: none)
    if any(history.unjudged_before(s, state["judged"].get(s), ts_us) for s in history.symbols() if s not in silent):
        return None  # a symbol's decision on an earlier bar has not come yet
    return decision


def fill_due_orders(state: dict, history: BarHistory, before_us: int, broker: BrokerSettings) -> dict:
    """The state with every open order whose next bar opens before `before_us` filled, in time order."""
    due, still_open = [], []
    for order in state["open_orders"]:
        bar = history.next_after(order["symbol"], order["ts_us"])
        (due if bar is not None and bar["ts_us"] < before_us else still_open).append((bar, order))
    if not due:
        return state
    book = state["book"]
    for bar, order in sorted(due, key=lambda pair: (pair[0]["ts_us"], pair[1]["symbol"], pair[1]["order_id"])):
        book = book_fill(book, fill_record(order, bar, broker)) or book
    return {**state, "book": book, "open_orders": [order for _, order in still_open]}


def _market(history: BarHistory, symbol: str, through_us: int) -> dict | None:
    closes = history.closes_through(symbol, through_us, RETURNS_WINDOW + 1)
    if not closes:
        return None
    returns = [b / a - 1.0 for a, b in zip(closes, closes[1:])]
    return {"close": closes[-1], "returns": returns}


def judge_decision(state: dict, decision: dict, history: BarHistory, risk: RiskSettings,
                   broker: BrokerSettings) -> tuple[dict, dict, dict | None]:
    """(state, RiskVerdict, the Order it allows or None) for a decision next_judgeable returned."""
    ts_us, symbol = decision["ts_us"], decision["symbol"]
    state = fill_due_orders(state, history, ts_us, broker)
    book = state["book"]
    held = set(book["positions"]) | {o["symbol"] for o in state["open_orders"]}
    markets = {s: m for s in sorted(held) if (m := _market(history, s, ts_us - 1)) is not None}
    record = {**{k: v for k, v in decision.items() if k != "ts_us"}, "ts": from_micros(ts_us)}
    pending: dict[str, float] = {}
    for o in state["open_orders"]:
        if o["ts_us"] < ts_us:  # not those of this same moment, so decisions of one moment commute
            pending[o["symbol"]] = pending.get(o["symbol"], 0.0) + o["quantity"] * (1 if o["side"] == "BUY" else -1)
    # a settled decision whose bar never came has no price of its own: rejected (NO_PRICE)
    order_market = _market(history, symbol, ts_us) if history.has(symbol, ts_us) else None
    try:
        if order_market is None:
            book, verdict = judge(book, record, {}, risk)  # no market: REJECT, NO_PRICE
        else:
            book, verdict = judge(book, record, markets, risk, order_market=order_market, pending=pending)
    except (AlgoError, rc.RiskCoreError, ValueError) as error:  # inputs the engine refuses: reject, go on
        verdict = {"verdict_id": derived_id("verdict", decision["decision_id"], risk.account),
                   "decision_id": decision["decision_id"], "symbol": symbol, "ts": record["ts"], "verdict": "REJECT",
                   "requested_quantity": 0.0, "approved_quantity": 0.0, "reason_codes": ["INVALID_INPUT"],
                   "limits_checked": [], "error": str(error)}
    book = remember_id(book, DECISION_IDS, decision["decision_id"]) or book
    order = order_from_verdict(verdict, risk.account)
    open_orders = state["open_orders"]
    if order is not None:
        open_orders = [*open_orders, {**order, "ts": None, "ts_us": ts_us}]
    judged = {**state["judged"], symbol: max(ts_us, state["judged"].get(symbol, ts_us))}
    return {**state, "book": book, "open_orders": open_orders, "judged": judged}, verdict, order


def prune_point(state: dict, pending: Mapping[str, dict]) -> int | None:
    """Bars before this time are needed only as recent history (returns, last closes)."""
    times = [d["ts_us"] for d in pending.values()] + [o["ts_us"] for o in state["open_orders"]]
    judged = list(state["judged"].values())
    if not judged:
        return None
    return min([min(judged), *times])


def judge_ready(state: dict, pending: dict[str, dict], history: BarHistory, risk: RiskSettings,
                broker: BrokerSettings, silent: Set[str] = frozenset()) -> tuple[dict, list[tuple[dict, dict | None]]]:
    """Judges every pending decision that can be judged now (removing it from `pending`), in order:
    (state, [(verdict, order or None)])."""
    out = []
    while (decision := next_judgeable(state, pending, history, silent)) is not None:
        del pending[decision["decision_id"]]
        state, verdict, order = judge_decision(state, decision, history, risk, broker)
        out.append((verdict, order))
    return state, out
