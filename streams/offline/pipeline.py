"""The streaming agents' logic run offline, in one process, over the same bars: `algo backtest --agents`.

Bars come from the same ticks `algo replay` publishes (streams.market.ticks), aggregated by the bar
agent's own function; then, bar by bar in the order they close, the technical and quant votes, the
event-time consensus (streams.consensus.event_time), the risk agent's event-time checks
(streams.risk.sequencer) and the paper broker's fills at the next bar's open (streams.broker.fills).
These are the functions the workers run, and they decide on event time only, so the decisions and
fills are those of the streaming pipeline on the same bars (tests/streams/offline compares digests).
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field

from streams.broker.book import mark, new_portfolio
from streams.broker.fills import book_fill, fill_bar, fill_record, remember_bar
from streams.consensus import event_time
from streams.errors import ConfigError, DataError
from streams.market.bars import apply_tick, bar_record, to_micros
from streams.market.datasets import BarSeries
from streams.market.ticks import merged_ticks
from streams.risk import sequencer
from streams.risk.rules import RETURNS_WINDOW
from streams.settings import Settings
from streams.technical.rules import TechnicalRules, remember_close, signal_record, vote

OFFLINE_AGENTS = ("technical", "quant")


@dataclass
class OfflineRun:
    decisions: list[dict] = field(default_factory=list)
    verdicts: list[dict] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    fills: list[dict] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)
    bars: int = 0
    book: dict | None = None
    quant_model: str | None = None
    seconds: float = 0.0


class QuantVoter:
    """The quant agent's per-bar logic with one policy (streams.quant.vote.vote_on_bar, as the worker)."""

    def __init__(self, policy) -> None:
        self.policy, self.state = policy, {}

    def vote(self, bar: dict) -> dict | None:
        from streams.quant.vote import vote_on_bar

        state, signal = vote_on_bar(self.state.get(bar["symbol"]), bar, self.policy)
        if state is not None:
            self.state[bar["symbol"]] = state
        return signal


def agent_rules(settings: Settings, agents: tuple[str, ...]):
    """The consensus rules with only `agents` voting (the others' weight 0)."""
    unknown = sorted(set(agents) - set(OFFLINE_AGENTS))
    if unknown:
        raise ConfigError(f"--agents: {', '.join(unknown)} cannot run offline; choose from {', '.join(OFFLINE_AGENTS)}")
    rules = settings.consensus
    weights = {agent: rules.weight(agent) for agent in agents}
    return dataclasses.replace(rules, weights=weights, default_weight=0.0,
                               bar_agents=tuple(a for a in rules.bar_agents if a in agents))


def run_offline(settings: Settings, series: list[BarSeries], source: str, agents: tuple[str, ...] = OFFLINE_AGENTS,
                policy=None, limit: int | None = None) -> OfflineRun:
    """Runs `agents` -> consensus -> risk -> broker over the series' bars; `policy` serves the quant
    (required when "quant" is among the agents)."""
    if not series:
        raise DataError("no bars to run on")
    if "quant" in agents and policy is None:
        raise ConfigError("the quant agent needs a registered model (`algo quant train`)")
    started = time.perf_counter()
    rules = agent_rules(settings, agents)
    technical_rules = TechnicalRules()
    quant = QuantVoter(policy) if "quant" in agents else None
    interval, interval_s = settings.bar_interval, settings.bar_interval_seconds
    risk, broker = settings.risk, settings.broker
    run = OfflineRun(quant_model=policy.version if quant else None)
    open_bars: dict[str, dict] = {}
    closes: dict[str, list[float]] = {}
    consensus: dict[str, dict] = {}
    risk_state, pending, history = sequencer.new_state(risk), {}, sequencer.BarHistory()
    book = new_portfolio(broker.account, broker.initial_cash)
    recent: dict[str, list[dict]] = {}
    open_orders: dict[str, list[dict]] = {}

    def trade(horizon_us: int | None) -> None:
        nonlocal risk_state, book
        risk_state = {**risk_state, "horizon_us": horizon_us}
        risk_state, judged = sequencer.judge_ready(risk_state, pending, history, risk, broker)
        point = sequencer.prune_point(risk_state, pending)
        if judged and point is not None:  # as the risk agent does: only recent bars are kept
            history.prune(point, keep=RETURNS_WINDOW + 2)
        for verdict, order in judged:
            run.verdicts.append(verdict)
            if order is None:
                continue
            run.orders.append(order)
            bar = fill_bar(order, recent.get(order["symbol"]) or [])
            if bar is None:
                open_orders.setdefault(order["symbol"], []).append(order)
            else:
                book = fill(order, bar, book)

    def fill(order: dict, bar: dict, into: dict) -> dict:
        made = fill_record(order, bar, broker)
        run.fills.append(made)
        booked = book_fill(into, made) or into
        return mark(booked, order["symbol"], recent[order["symbol"]][-1]["close"])

    def on_bar(bar: dict) -> None:
        nonlocal book
        symbol, bar_us = bar["symbol"], to_micros(bar["ts"])
        run.bars += 1
        recent[symbol] = remember_bar(recent.get(symbol), bar)
        for order in open_orders.pop(symbol, []):
            at = fill_bar(order, recent[symbol])
            if at is None:
                open_orders.setdefault(symbol, []).append(order)
            else:
                book = fill(order, at, book)
        book = mark(book, symbol, bar["close"])
        signals = []
        if "technical" in agents:
            closes[symbol] = remember_close(closes.get(symbol), bar["close"], technical_rules)
            action, confidence, rationale = vote(closes[symbol], technical_rules)
            signals.append(signal_record(bar, action, confidence, rationale, technical_rules))
        if quant is not None and (made := quant.vote(bar)) is not None:
            signals.append(made)
        state = event_time.on_bar(consensus.get(symbol), bar)
        for signal in signals:
            run.signals[signal["agent"]] = run.signals.get(signal["agent"], 0) + 1
            state, _ = event_time.on_vote(state, signal, rules)
        state = event_time.clear_news(state, bar_us)  # no news-driven agent runs offline
        state, decisions = event_time.decide_ready(state, symbol, rules)
        consensus[symbol] = state
        history.add(symbol, bar_us, bar["open"], bar["close"])
        for decision in decisions:
            run.decisions.append(decision)
            if not sequencer.is_judged(risk_state, decision["decision_id"]):
                pending[decision["decision_id"]] = sequencer.pending_entry(decision)
        # bars close in time order across symbols (ticks are merged in time order), so every bar
        # before this one's time is known
        trade(bar_us)

    ticks = merged_ticks(series, source)
    for tick in ticks if limit is None else itertools.islice(ticks, limit):  # as `algo replay --limit`
        state, closed = apply_tick(open_bars.get(tick["symbol"]), tick, interval, interval_s)
        open_bars[tick["symbol"]] = state
        for bar in closed:
            on_bar(bar)
    for symbol in sorted(open_bars):  # the last bar of each symbol (the workers close it when idle)
        on_bar(bar_record(open_bars[symbol]))
    trade(None if not history.symbols() else 2**62)
    run.book = book
    run.seconds = time.perf_counter() - started
    return run
