"""Bar agent: ticks -> OHLCV bars per symbol over a tumbling event-time window (BAR_INTERVAL).

The open bar per symbol lives in the changelogged table `symbol_to_open_bar`, co-partitioned with
market.ticks (same key, same partition), so a restarted worker recovers it and picks up where it
stopped. A bar is published when a tick of a later window arrives, or after BAR_IDLE_CLOSE_S
seconds without ticks for that symbol (the last bar of a replay); a flushed bar that later gets
more ticks is re-published, and the sink upserts. Ticks are taken in small batches and the table
is written once per symbol per batch, not once per tick.
"""
from __future__ import annotations

import time
import weakref
from contextlib import contextmanager

from faust.streams import _current_event

from streams.app import app, avro_topic, dead_letter_on_failure, decode_or_dead_letter, log, raw_topic, settings
from streams.errors import CodecError
from streams.market.bars import apply_tick, bar_record, bar_version

AGENT = "bars"
ticks_topic = raw_topic("market.ticks")
bars_topic = avro_topic("market.bars")
symbol_to_open_bar = app.Table("symbol_to_open_bar", partitions=settings.topic_partitions)

# Worker-local bookkeeping for idle flushes (a table may only change inside its stream).
_last_tick_wall: dict[str, float] = {}
_published: dict[str, tuple[int, int]] = {}


@contextmanager
def attributed_to(event):
    """Table writes inside go to `event`'s partition of the changelog (the symbol's partition).

    One write per symbol per batch is attributed to that symbol's last event. Only this task's
    context variable is set (and reset): the stream's shared `current_event` attribute, which
    take_events' buffer reads, is left alone.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@app.agent(ticks_topic, name="aggregate_bars")
async def aggregate_bars(stream):
    interval, interval_s = settings.bar_interval, settings.bar_interval_seconds
    async for events in stream.take_events(500, within=0.01):
        touched: dict[str, tuple[dict, object]] = {}
        for event in events:
            async with dead_letter_on_failure(event, AGENT):
                tick = await decode_or_dead_letter(event, AGENT)
                if tick is None:
                    continue
                symbol = tick["symbol"]
                previous = touched[symbol][0] if symbol in touched else symbol_to_open_bar.get(symbol)
                state, closed = apply_tick(previous, tick, interval, interval_s)
                touched[symbol] = (state, event)
                for bar in closed:
                    await bars_topic.send(key=symbol.encode(), value=bar)
        now = time.monotonic()
        for symbol, (state, event) in touched.items():
            with attributed_to(event):
                symbol_to_open_bar[symbol] = state
            _last_tick_wall[symbol] = now


@app.timer(interval=0.5)
async def close_idle_bars() -> None:
    now = time.monotonic()
    for symbol, state in list(symbol_to_open_bar.items()):
        if state is None or _published.get(symbol) == bar_version(state):
            continue
        if now - _last_tick_wall.get(symbol, 0.0) >= settings.bar_idle_close_s:
            try:
                await bars_topic.send(key=symbol.encode(), value=bar_record(state))
            except CodecError as error:  # a bar its schema refuses: say so once, do not stop the timer
                log.error("bars: idle bar of %s not published: %s", symbol, error)
            _published[symbol] = bar_version(state)
