"""Bar agent: ticks -> OHLCV bars per symbol over a tumbling event-time window (BAR_INTERVAL).

The open bar per symbol lives in the changelogged table `symbol_to_open_bar`, co-partitioned with
market.ticks (same key, same partition), so a restarted worker recovers it and picks up where it
stopped. A bar is published when a tick of a later window arrives, or after BAR_IDLE_CLOSE_S
seconds without ticks for that symbol (the last bar of a replay) while this worker has read its
partition of market.ticks to the end: a worker that falls behind (a busy machine, a fast replay)
never closes a bar whose ticks are still waiting to be read. A flushed bar that later gets more
ticks is re-published, and the sink upserts. Ticks are taken in small batches and the table
is written once per symbol per batch, not once per tick.
"""
from __future__ import annotations

import asyncio
import time
import weakref
from contextlib import contextmanager

from aiokafka.errors import KafkaError
from faust.streams import _current_event
from faust.types import TP

from streams.app import app, avro_topic, dead_letter_on_failure, decode_or_dead_letter, log, raw_topic, settings
from streams.errors import CodecError
from streams.market.bars import apply_tick, bar_record, bar_version, check_tick, to_micros

AGENT = "bars"
ticks_topic = raw_topic("market.ticks")
bars_topic = avro_topic("market.bars")
symbol_to_open_bar = app.Table("symbol_to_open_bar", partitions=settings.topic_partitions)

# Worker-local bookkeeping for idle flushes (a table may only change inside its stream).
_last_tick_wall: dict[str, float] = {}
_published: dict[str, tuple[int, int]] = {}
_partition_of: dict[str, int] = {}
_ticks_read: dict[int, int] = {}  # market.ticks partition -> the offset after the last tick taken


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
                check_tick(tick)  # a DataError dead-letters the tick with its reason
                symbol = tick["symbol"]
                previous = touched[symbol][0] if symbol in touched else symbol_to_open_bar.get(symbol)
                state, closed = apply_tick(previous, tick, interval, interval_s)
                touched[symbol] = (state, event)
                for bar in closed:  # unless an idle close already published it as it is
                    if _published.get(symbol) != (to_micros(bar["ts"]), bar["tick_count"]):
                        await bars_topic.send(key=symbol.encode(), value=bar)
        now = time.monotonic()
        for symbol, (state, event) in touched.items():
            with attributed_to(event):
                symbol_to_open_bar[symbol] = state
            _last_tick_wall[symbol] = now
            _partition_of[symbol] = event.message.partition
        for event in events:
            _ticks_read[event.message.partition] = event.message.offset + 1


def assigned_partitions() -> set[int]:
    """The market.ticks partitions this worker consumes now."""
    name = ticks_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}


async def unread_partitions(partitions: set[int]) -> set[int]:
    """The partitions of market.ticks this worker has not read to their end (ticks are waiting)."""
    if not partitions:
        return set()
    tps = [TP(ticks_topic.get_topic_name(), p) for p in sorted(partitions)]
    ends = await app.consumer.highwaters(*tps)
    return {tp.partition for tp in tps if _ticks_read.get(tp.partition, 0) < (ends.get(tp) or 0)}


@app.timer(interval=0.5)
async def close_idle_bars() -> None:
    now = time.monotonic()
    idle = []
    for symbol, state in list(symbol_to_open_bar.items()):
        if state is None or _published.get(symbol) == bar_version(state):
            continue
        # a bar recovered after a restart waits BAR_IDLE_CLOSE_S from when it is first seen
        if now - _last_tick_wall.setdefault(symbol, now) >= settings.bar_idle_close_s:
            idle.append((symbol, state))
    if not idle or app.rebalancing:  # mid-rebalance the table may still hold partitions being handed over
        return
    assigned = assigned_partitions()
    try:
        behind = await unread_partitions(assigned)
    except (KafkaError, asyncio.TimeoutError) as error:  # broker unreachable: no idle close this round
        log.warning("bars: cannot read market.ticks end offsets (%s); idle bars wait", error)
        return
    for symbol, state in idle:
        current = symbol_to_open_bar.get(symbol)  # ticks may have come in while the offsets were read
        unchanged = current is not None and bar_version(current) == bar_version(state)
        # a bar recovered from the changelog has no partition seen yet: every assigned partition is read first
        partitions = {_partition_of[symbol]} if symbol in _partition_of else assigned
        if unchanged and not app.rebalancing and partitions and partitions <= assigned and not partitions & behind:
            try:
                await bars_topic.send(key=symbol.encode(), value=bar_record(state))
            except CodecError as error:  # a bar its schema refuses: say so once, do not stop the timer
                log.error("bars: idle bar of %s not published: %s", symbol, error)
            _published[symbol] = bar_version(state)
