"""Technical agent: market.bars -> agent.signals (SMA trend + momentum, see streams.technical.rules)."""
from __future__ import annotations

from streams.app import app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, raw_topic, settings
from streams.technical.rules import TechnicalRules, remember_close, signal_record, vote

AGENT = "technical"
rules = TechnicalRules()
bars_topic = raw_topic("market.bars")
signals_topic = avro_topic("agent.signals")
symbol_to_closes = app.Table("symbol_to_closes", partitions=settings.topic_partitions)
symbol_to_last_bar_us = app.Table("symbol_to_last_bar_us", partitions=settings.topic_partitions)


@app.agent(bars_topic, name="technical_vote")
async def technical_vote(stream):
    from streams.market.bars import to_micros

    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            symbol, bar_us = bar["symbol"], to_micros(bar["ts"])
            last_us = symbol_to_last_bar_us.get(symbol)
            if last_us is not None and bar_us == last_us:
                continue  # an idle-flushed bar re-published with more ticks: already voted on this bar
            closes = [] if last_us is not None and bar_us < last_us else symbol_to_closes.get(symbol)  # a replay
            closes = remember_close(closes, bar["close"], rules)
            symbol_to_closes[symbol] = closes
            symbol_to_last_bar_us[symbol] = bar_us
            action, confidence, rationale = vote(closes, rules)
            await signals_topic.send(key=symbol.encode(), value=signal_record(bar, action, confidence, rationale, rules))
