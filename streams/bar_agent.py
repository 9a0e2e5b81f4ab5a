"""Bar agent: ticks -> OHLCV bars per symbol over a tumbling event-time window (BAR_INTERVAL).

The open bar per symbol lives in the changelogged table `symbol_to_open_bar`, co-partitioned with
market.ticks (keys are the raw symbol bytes and the table uses the Java-compatible murmur2
partitioner, like our producers), so a restarted worker picks up where it stopped. Ticks are
taken in batches and the table is written once per symbol per batch, not once per tick.
A bar is published when a tick of a later window arrives, or after BAR_IDLE_CLOSE_S seconds
without ticks for that symbol (the last bar of a replay); a flushed bar that later gets more ticks
is re-published, and the sink upserts.
"""
from __future__ import annotations

import time

import faust

from streams.app import app, avro_topic, decode_or_dead_letter, raw_topic, settings
from streams.bars import apply_tick, bar_record, bar_version

AGENT = "bars"
ticks_topic = raw_topic("market.ticks")
bars_topic = avro_topic("market.bars")
symbol_to_open_bar = app.Table(
    "symbol_to_open_bar", partitions=settings.topic_partitions, use_partitioner=True,
    schema=faust.Schema(key_serializer="raw", value_serializer="json"),
)

# Worker-local bookkeeping for idle flushes.
_last_tick_wall: dict[bytes, float] = {}
_published: dict[bytes, tuple[int, int]] = {}


@app.agent(ticks_topic, name="aggregate_bars")
async def aggregate_bars(stream):
    interval, interval_s = settings.bar_interval, settings.bar_interval_seconds
    async for events in stream.take_events(1000, within=0.05):
        touched: dict[bytes, dict] = {}
        for event in events:
            tick = await decode_or_dead_letter(event, AGENT)
            if tick is None:
                continue
            key = tick["symbol"].encode()
            state = touched[key] if key in touched else symbol_to_open_bar.get(key)
            touched[key], closed = apply_tick(state, tick, interval, interval_s)
            for bar in closed:
                await bars_topic.send(key=key, value=bar)
        now = time.monotonic()
        for key, state in touched.items():
            symbol_to_open_bar[key] = state
            _last_tick_wall[key] = now


@app.timer(interval=0.5)
async def close_idle_bars() -> None:
    now = time.monotonic()
    for key, state in list(symbol_to_open_bar.items()):
        if state is None or _published.get(key) == bar_version(state):
            continue
        if now - _last_tick_wall.get(key, 0.0) >= settings.bar_idle_close_s:
            await bars_topic.send(key=key, value=bar_record(state))
            _published[key] = bar_version(state)
