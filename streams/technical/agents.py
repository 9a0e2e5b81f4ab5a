"""Technical agent: market.bars -> agent.signals (SMA trend + momentum, see streams.technical.rules)."""
from __future__ import annotations

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, events_without_gaps, log,
    raw_topic, settings)
from streams.technical.rules import TechnicalRules, closes_as_of, remember_bar, signal_record, vote

AGENT = "technical"
rules = TechnicalRules()
bars_topic = raw_topic("market.bars")
signals_topic = avro_topic("agent.signals")
# symbol -> {"closes", "bars_us"} (streams.technical.rules.remember_bar)
symbol_to_recent_closes = app.Table("symbol_to_recent_closes", partitions=settings.topic_partitions)


@app.agent(bars_topic, name="technical_vote")
async def technical_vote(stream):
    from streams.market.bars import to_micros

    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            symbol, bar_us = bar["symbol"], to_micros(bar["ts"])
            state = symbol_to_recent_closes.get(symbol)
            if state is not None and bar_us <= state["bars_us"][-1]:
                # seen before: a re-delivery after a crash, or an idle-flushed bar re-published with more
                # ticks. The same vote again, in case the first was lost with the crash.
                closes = closes_as_of(state, bar_us, rules)
                if closes is None:
                    log.warning("technical: %s bar %s is older than the %d kept: not voted on again", symbol,
                                bar["ts"], len(state["bars_us"]))
                    continue
            else:
                state = remember_bar(state, bar_us, bar["close"], rules)
                symbol_to_recent_closes[symbol] = state
                closes = state["closes"][-rules.history:]
            action, confidence, rationale = vote(closes, rules)
            await signals_topic.send(key=symbol.encode(), value=signal_record(bar, action, confidence, rationale, rules))
