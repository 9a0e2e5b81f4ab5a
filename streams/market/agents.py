"""Bar agent: ticks -> OHLCV bars per symbol over a tumbling event-time window (BAR_INTERVAL).

The open bar per symbol lives in the changelogged table `symbol_to_open_bar`, co-partitioned with
market.ticks (same key, same partition), so a restarted worker recovers it and picks up where it
stopped. A bar is published when a tick of a later window arrives, or after BAR_IDLE_CLOSE_S
seconds without ticks for that symbol (the last bar of a replay) while this worker has read its
partition of market.ticks to the end: a worker that falls behind (a busy machine, a fast replay)
never closes a bar whose ticks are still waiting to be read. A flushed bar that later gets more
ticks is re-published, and the sink upserts. Ticks are taken in small batches and the table
is written once per symbol per batch, not once per tick.

Each tick is applied exactly once: the table also keeps, per market.ticks partition, the next
offset not yet applied (streams.bus.gaps). A re-delivered tick is skipped; ticks the consumer
skipped (Faust can drop one when a rebalance hands a partition over) are read back from the
broker and applied in order. Re-reading market.ticks under the same app id therefore changes
nothing: a fresh run takes a fresh ALGO_APP_ID (the demo does), which also gives a fresh table.
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
from streams.bus.gaps import classify, read_range
from streams.errors import CodecError
from streams.market.bars import apply_tick, bar_record, bar_version, check_tick, to_micros
from streams.outages import until_available

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


def next_offset_key(partition: int) -> str:
    """The table key under which a market.ticks partition's next unapplied offset is kept; it sits
    in the same changelog partition as that partition's bars, after them (no symbol starts with NUL)."""
    return f"\x00next-offset:{partition}"


def is_symbol_key(key: str) -> bool:
    return not key.startswith("\x00")


async def take_tick(event, touched: dict[str, tuple[dict, object]], owner) -> None:
    """Applies one tick message to the open bars of this batch, publishing the bar it closes.
    `owner` is the stream event whose partition the table write is attributed to (the event itself,
    or the one after a gap for messages read back from the broker)."""
    interval, interval_s = settings.bar_interval, settings.bar_interval_seconds
    async with dead_letter_on_failure(event, AGENT):
        tick = await decode_or_dead_letter(event, AGENT)
        if tick is None:
            return
        check_tick(tick)  # a DataError dead-letters the tick with its reason
        symbol = tick["symbol"]
        previous = touched[symbol][0] if symbol in touched else symbol_to_open_bar.get(symbol)
        state, closed = apply_tick(previous, tick, interval, interval_s)
        touched[symbol] = (state, owner)
        for bar in closed:  # unless an idle close already published it as it is
            if _published.get(symbol) != (to_micros(bar["ts"]), bar["tick_count"]):
                await bars_topic.send(key=symbol.encode(), value=bar)


async def missing_ticks(event, start: int) -> list:
    """The messages of the event's partition from `start` up to the event, read from the broker."""
    message = event.message
    missing = await until_available(asyncio.to_thread, read_range, settings.kafka_config(), message.topic,
                                    message.partition, start, message.offset,
                                    what=f"bars reading back {message.topic}[{message.partition}]")
    log.warning("bars: the stream skipped %s[%s] offsets %d..%d; %d message(s) read back from the broker",
                message.topic, message.partition, start, message.offset - 1, len(missing))
    return missing


@app.agent(ticks_topic, name="aggregate_bars")
async def aggregate_bars(stream):
    async for events in stream.take_events(500, within=0.01):
        touched: dict[str, tuple[dict, object]] = {}
        next_offset: dict[int, int | None] = {}
        last_event_of: dict[int, object] = {}
        for event in events:
            partition, offset = event.message.partition, event.message.offset
            if partition not in next_offset:
                next_offset[partition] = symbol_to_open_bar.get(next_offset_key(partition))
            verdict = classify(next_offset[partition], offset, log_end(partition))
            if verdict == "skip":  # applied already: a re-delivery after a crash or a rebalance
                continue
            if verdict == "gap":
                for fetched in await missing_ticks(event, next_offset[partition]):
                    await take_tick(fetched, touched, owner=event)
            await take_tick(event, touched, owner=event)
            next_offset[partition], last_event_of[partition] = offset + 1, event
        now = time.monotonic()
        for symbol, (state, event) in touched.items():
            with attributed_to(event):
                symbol_to_open_bar[symbol] = state
            _last_tick_wall[symbol] = now
            _partition_of[symbol] = event.message.partition
        for partition, event in last_event_of.items():  # after the bars: the changelog keeps the order
            with attributed_to(event):
                symbol_to_open_bar[next_offset_key(partition)] = next_offset[partition]
        for event in events:  # skipped re-deliveries count as read too, or idle closes would wait for a new tick
            _ticks_read[event.message.partition] = event.message.offset + 1


def log_end(partition: int) -> int | None:
    """market.ticks[partition]'s end offset as of the consumer's last fetch (None before one)."""
    return app.consumer.highwater(TP(ticks_topic.get_topic_name(), partition))


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
        if not is_symbol_key(symbol) or state is None or _published.get(symbol) == bar_version(state):
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
