"""Consensus agent: agent.signals + market.bars -> consensus.decisions, one decision per symbol and
bar, in event time (streams.consensus.event_time; README, "Event time").

Votes and bars only change each symbol's state; a bar is decided once the
votes that belong to it are in. News-driven votes (the analyst's) are waited for with a barrier:
every decision round first checks that the groups running the analyst have committed news.items up
to where it ended when the round began, and that this worker has read agent.signals up to where it
ended after that (streams.bus.progress). A bar-driven agent silent for CONSENSUS_AGENT_TIMEOUT_S is
not waited for; its votes then count late. Agent standing goes to Postgres agent_stats.

A symbol's state lives in two tables: `symbol_to_consensus` (its watermarks, news votes in the
window, scores: bounded) and `symbol_bar_to_votes` (each undecided bar's close and votes, by
"<symbol>|<µs>"), so a slow agent that leaves thousands of bars undecided never makes one changelog
record too large. Both are mirrored in memory and written as they change. The tables are written
from the streams and from the round task, so they are placed by the partitioner (the symbol key
lands where the topics put it); run one consensus worker per symbol set.
"""
from __future__ import annotations

import asyncio
import time

import psycopg

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter,
    events_without_gaps, log, raw_topic, settings)
from streams.bus.progress import StreamProgress, wait_drained, wait_read_through
from streams.consensus import event_time
from streams.consensus.vote import hit_rate
from streams.errors import ServiceUnavailable
from streams.market.bars import from_micros, to_micros
from streams.workers import groups_running

AGENT = "consensus"
NEWS_AGENT_MODULE = "streams.analyst.agents"
rules = settings.consensus
signals_topic = raw_topic("agent.signals")
bars_topic = raw_topic("market.bars")
decisions_topic = avro_topic("consensus.decisions")

symbol_to_consensus = app.Table("symbol_to_consensus", partitions=settings.topic_partitions, use_partitioner=True)
symbol_bar_to_votes = app.Table("symbol_bar_to_votes", partitions=settings.topic_partitions, use_partitioner=True)
_mirror: dict = {"states": None}  # symbol -> its whole state (event_time's shape), rebuilt from the tables once
_signal_counts: dict[str, tuple[int, int]] = {}  # agent -> (signals since start, last signal ts_us)
_last_heard: dict[str, float] = {}  # bar-driven agent -> wall time of its last vote (absent when silent)
_waiting = {"symbols": set(), "since": time.monotonic()}  # symbols with undecided bars, since when some have
_lock = asyncio.Lock()  # streams and the round task read, change and write the same states
_progress: dict = {"client": None}
_votes_read: dict[int, int] = {}  # agent.signals partition -> the offset after the last vote handled


def _states() -> dict[str, dict]:
    """Every symbol's state, rebuilt from the tables once (after a restart they have recovered). A bar
    at or before the symbol's last decision is a leftover of a crash between the two writes: dropped."""
    if _mirror["states"] is None:
        states = {symbol: {**summary, "pending": {}} for symbol, summary in list(symbol_to_consensus.items()) if summary}
        for key, entry in list(symbol_bar_to_votes.items()):
            symbol, _, ts = key.rpartition("|")
            state = states.setdefault(symbol, event_time.new_state())
            if entry and (state["decided_us"] is None or int(ts) > state["decided_us"]):
                state["pending"][ts] = entry
        _mirror["states"] = states
    return _mirror["states"]


def _save(symbol: str, state: dict) -> None:
    """Writes what changed: the bars added, changed or decided, then the rest of the state."""
    states = _states()
    old = states.get(symbol) or {"pending": {}}
    for ts, entry in state["pending"].items():
        if old["pending"].get(ts) is not entry:
            symbol_bar_to_votes[f"{symbol}|{ts}"] = entry
    for ts in old["pending"].keys() - state["pending"].keys():
        symbol_bar_to_votes.pop(f"{symbol}|{ts}", None)
    if any(old.get(key) is not value and old.get(key) != value for key, value in state.items() if key != "pending"):
        symbol_to_consensus[symbol] = {key: value for key, value in state.items() if key != "pending"}
    states[symbol] = state


def absent_agents() -> set[str]:
    """Bar-driven agents silent for CONSENSUS_AGENT_TIMEOUT_S while bars wait (not since an idle spell)."""
    now, since = time.monotonic(), _waiting["since"]
    return {agent for agent in rules.bar_agents
            if now - max(_last_heard.get(agent, since), since) > rules.agent_timeout_s}


def _note_waiting(symbol: str, state: dict) -> None:
    if state["pending"]:
        if not _waiting["symbols"]:
            _waiting["since"] = time.monotonic()
        _waiting["symbols"].add(symbol)
    else:
        _waiting["symbols"].discard(symbol)


async def decide_symbol(symbol: str) -> None:
    """Publishes every decision the symbol's state allows now (called with _lock held)."""
    state = _states().get(symbol)
    if state is None:
        return
    state, decisions = event_time.decide_ready(state, symbol, rules, absent_agents())
    for decision in decisions:  # sent before the state that records them: a crash re-sends the same ids
        await decisions_topic.send(key=symbol.encode(), value=decision)
    if decisions:
        _save(symbol, state)
    _note_waiting(symbol, state)


@app.agent(bars_topic, name="consensus_bars")
async def take_bars(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            async with _lock:
                _save(bar["symbol"], event_time.on_bar(_states().get(bar["symbol"]), bar))
                await decide_symbol(bar["symbol"])


@app.agent(signals_topic, name="consensus_decide")
async def take_votes(stream):
    async for event in events_without_gaps(stream, AGENT):
        try:
            async with dead_letter_on_failure(event, AGENT):
                signal = await decode_or_dead_letter(event, AGENT)
                if signal is None:
                    continue
                await take_vote(signal)
        finally:
            _votes_read[event.message.partition] = event.message.offset + 1


async def take_vote(signal: dict) -> None:
    symbol, agent = signal["symbol"], signal["agent"]
    count, _ = _signal_counts.get(agent, (0, 0))
    _signal_counts[agent] = (count + 1, to_micros(signal["ts"]))
    if agent in rules.bar_agents:
        _last_heard[agent] = time.monotonic()
    async with _lock:
        state, late = event_time.on_vote(_states().get(symbol), signal, rules)
        _save(symbol, state)
        if late:
            log.warning("consensus: %s's vote on %s at %s came after its bar was decided; counted in the next "
                        "decision", agent, symbol, signal["ts"])
        await decide_symbol(symbol)


def _progress_client() -> StreamProgress:
    if _progress["client"] is None:
        _progress["client"] = StreamProgress(settings)
    return _progress["client"]


async def news_round() -> None:
    """One barrier round: bars complete (all bar-driven votes in) before it began get their news."""
    absent = absent_agents()
    waiting = {}
    for symbol, state in list(_states().items()):
        complete = event_time.complete_bars(state, rules, absent) if state else []
        if complete and (state["news_cleared_us"] is None or complete[-1] > state["news_cleared_us"]):
            waiting[symbol] = complete[-1]
    if not waiting:
        return
    progress = _progress_client()
    news_groups = await asyncio.to_thread(progress.active_groups, groups_running(settings, NEWS_AGENT_MODULE))
    if news_groups:
        await wait_drained(progress, "news.items", news_groups)
        await wait_read_through(progress, "agent.signals", app.conf.id, _votes_read)  # the votes news produced
    async with _lock:
        for symbol, through_us in waiting.items():
            _save(symbol, event_time.clear_news(_states().get(symbol), through_us))
            await decide_symbol(symbol)


@app.task
async def run_news_rounds() -> None:
    if not event_time.waits_for_news(rules):
        log.info("consensus: no news-driven agent has a weight; bars are decided on their bar votes alone")
    while True:
        try:
            if event_time.waits_for_news(rules):
                await news_round()
            else:
                async with _lock:
                    for symbol in list(_states()):
                        await decide_symbol(symbol)
        except ServiceUnavailable as error:
            log.warning("consensus: cannot check the analyst's progress (%s); retrying", error)
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.02)


@app.timer(interval=2.0)
async def publish_agent_stats() -> None:
    """Each agent's weight, measured hit rate (over all symbols) and activity, for the bridge and the dashboard."""
    accuracy: dict[str, dict] = {}
    for state in list(_states().values()):
        for agent, score in (state or {}).get("accuracy", {}).items():
            total = accuracy.setdefault(agent, {"hits": 0.0, "calls": 0.0})
            total["hits"] += score["hits"]
            total["calls"] += score["calls"]
    agents = set(accuracy) | set(_signal_counts)
    if not agents:
        return
    rows = []
    for agent in sorted(agents):
        signals, last_us = _signal_counts.get(agent, (0, 0))
        rows.append((agent, rules.weight(agent), hit_rate(accuracy.get(agent), rules),
                     int(accuracy.get(agent, {}).get("calls", 0)), signals, from_micros(last_us) if last_us else None))
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            await conn.cursor().executemany(
                """INSERT INTO agent_stats (agent, configured_weight, hit_rate, scored_calls, signals, last_signal_at)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (agent) DO UPDATE SET
                   configured_weight = EXCLUDED.configured_weight, hit_rate = EXCLUDED.hit_rate,
                   scored_calls = EXCLUDED.scored_calls, signals = EXCLUDED.signals,
                   last_signal_at = EXCLUDED.last_signal_at, updated_at = now()""", rows)
    except psycopg.Error as error:
        log.warning("agent_stats not written: %s", error)
