"""Bar agent: ticks -> OHLCV bars per symbol over a tumbling event-time window (BAR_INTERVAL).

The open bar per symbol lives in the changelogged table `symbol_to_open_bar`, co-partitioned with
market.ticks (same key, same partition), so a restarted worker recovers it and picks up where it
stopped. A bar is published when a tick of a later window arrives, or after BAR_IDLE_CLOSE_S
seconds without ticks for that symbol (the last bar of a replay); a flushed bar that later gets
more ticks is re-published, and the sink upserts.
"""
from __future__ import annotations

import time

from streams.app import app, avro_topic, decode_or_dead_letter, raw_topic, settings
from streams.bars import apply_tick, bar_record, bar_version

AGENT = "bars"
ticks_topic = raw_topic("market.ticks")
bars_topic = avro_topic("market.bars")
symbol_to_open_bar = app.Table("symbol_to_open_bar", partitions=settings.topic_partitions)

# Worker-local bookkeeping for idle flushes (a table may only change inside its stream).
_last_tick_wall: dict[str, float] = {}
_published: dict[str, tuple[int, int]] = {}


@app.agent(ticks_topic, name="aggregate_bars")
async def aggregate_bars(stream):
    interval, interval_s = settings.bar_interval, settings.bar_interval_seconds
    async for event in stream.events():
        tick = await decode_or_dead_letter(event, AGENT)
        if tick is None:
            continue
        symbol = tick["symbol"]
        state, closed = apply_tick(symbol_to_open_bar.get(symbol), tick, interval, interval_s)
        symbol_to_open_bar[symbol] = state
        _last_tick_wall[symbol] = time.monotonic()
        for bar in closed:
            await bars_topic.send(key=symbol.encode(), value=bar)


@app.timer(interval=0.5)
async def close_idle_bars() -> None:
    now = time.monotonic()
    for symbol, state in list(symbol_to_open_bar.items()):
        if state is None or _published.get(symbol) == bar_version(state):
            continue
        if now - _last_tick_wall.get(symbol, 0.0) >= settings.bar_idle_close_s:
            await bars_topic.send(key=symbol.encode(), value=bar_record(state))
            _published[symbol] = bar_version(state)
