"""Consensus agent: agent.signals -> consensus.decisions (streams.consensus.vote), scoring each agent's
calls against the next bar's close (market.bars) to weight it by its measured accuracy.

`agent_to_accuracy` is keyed by agent but updated from the bars stream (keyed by symbol), so it is
placed by the partitioner; run one consensus worker. Agent standing goes to Postgres agent_stats.
"""
from __future__ import annotations

from datetime import datetime, timezone

import psycopg

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter, log,
                         raw_topic, settings)
from streams.market.bars import from_micros
from streams.consensus.vote import (decide, hit_rate, is_new_stance, record_call, remember_vote,
                               score_calls, update_accuracy)

AGENT = "consensus"
rules = settings.consensus
signals_topic = raw_topic("agent.signals")
bars_topic = raw_topic("market.bars")
decisions_topic = avro_topic("consensus.decisions")

symbol_to_votes = app.Table("symbol_to_votes", partitions=settings.topic_partitions)
symbol_to_close = app.Table("symbol_to_close", partitions=settings.topic_partitions)
symbol_to_pending_calls = app.Table("symbol_to_pending_calls", partitions=settings.topic_partitions)
symbol_to_stance = app.Table("symbol_to_stance", partitions=settings.topic_partitions)
agent_to_accuracy = app.Table("agent_to_accuracy", partitions=settings.topic_partitions, use_partitioner=True)
_signal_counts: dict[str, tuple[int, int]] = {}  # agent -> (signals since start, last signal ts_us)


@app.agent(bars_topic, name="consensus_score_calls")
async def score_agent_calls(stream):
    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            symbol = bar["symbol"]
            symbol_to_close[symbol] = float(bar["close"])
            remaining, scored = score_calls(symbol_to_pending_calls.get(symbol), bar)
            symbol_to_pending_calls[symbol] = remaining
            for agent, hit in scored:
                agent_to_accuracy[agent] = update_accuracy(agent_to_accuracy.get(agent), hit)


@app.agent(signals_topic, name="consensus_decide")
async def decide_on_signals(stream):
    from streams.market.bars import to_micros

    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            signal = await decode_or_dead_letter(event, AGENT)
            if signal is None:
                continue
            symbol = signal["symbol"]
            count, _ = _signal_counts.get(signal["agent"], (0, 0))
            _signal_counts[signal["agent"]] = (count + 1, to_micros(signal["ts"]))
            votes = remember_vote(symbol_to_votes.get(symbol), signal)
            symbol_to_votes[symbol] = votes
            symbol_to_pending_calls[symbol] = record_call(symbol_to_pending_calls.get(symbol), signal,
                                                          symbol_to_close.get(symbol))
            decision = decide(symbol, votes, dict(agent_to_accuracy.items()), rules)
            if decision is not None and is_new_stance(symbol_to_stance.get(symbol), decision, rules.min_change):
                symbol_to_stance[symbol] = {"action": decision["action"], "target": decision["target_position"]}
                await decisions_topic.send(key=symbol.encode(), value=decision)


@app.timer(interval=2.0)
async def publish_agent_stats() -> None:
    """Each agent's weight, measured hit rate and activity, for the bridge and the dashboard."""
    accuracy = dict(agent_to_accuracy.items())
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
