"""`algo memory record`: the pipeline's own access log (`cache.access`) as a trace CSV
(`time,key,size,volatility`, streams.memory.trace): time = the access's ts in seconds, volatility = the
volatility of the key's symbol as of the access (streams.memory.tiering.volatility over the bars in
Postgres market_data that had been written by then), 0 for keys without a symbol."""
from __future__ import annotations

import bisect
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.bus.codecs import CodecRegistry
from streams.errors import CodecError, DataError, ServiceUnavailable
from streams.memory import keys
from streams.memory.tiering import VOLATILITY_BARS, volatility
from streams.memory.trace import write_trace
from streams.outages import KAFKA, postgres_errors

TOPIC = "cache.access"
PROGRESS_EVERY = 5000

BARS_SQL = """
SELECT symbol, ts, close, updated_at FROM market_data
WHERE interval = %(interval)s AND symbol = ANY(%(symbols)s)
ORDER BY symbol, updated_at, ts
"""


@dataclass(frozen=True)
class Access:
    time_s: float
    key: str
    size: int
    symbol: str | None


@dataclass(frozen=True)
class RecordSummary:
    path: Path
    requests: int
    distinct: int
    symbols: int
    skipped: int  # messages that did not decode


def volatility_as_of(accesses: Sequence[Access], bars: dict[str, list[tuple[float, float, float]]]) -> list[float]:
    """Per access, its symbol's volatility over the bars known at that time. `bars`: symbol ->
    (bar time, close, written at) sorted by written-at; a bar counts once written, at its place by bar time."""
    order = sorted(range(len(accesses)), key=lambda i: accesses[i].time_s)
    known: dict[str, list[tuple[float, float]]] = {}  # symbol -> (bar time, close) of the bars written so far
    next_bar = dict.fromkeys(bars, 0)
    cached: dict[str, float] = {}
    out = [0.0] * len(accesses)
    for i in order:
        access = accesses[i]
        symbol = access.symbol
        if symbol is None or symbol not in bars:
            continue
        series, position = bars[symbol], next_bar[symbol]
        moved = False
        while position < len(series) and series[position][2] <= access.time_s:
            bisect.insort(known.setdefault(symbol, []), series[position][:2])
            position, moved = position + 1, True
        next_bar[symbol] = position
        if moved or symbol not in cached:
            closes = [close for _, close in known.get(symbol, [])[-(VOLATILITY_BARS + 1):]]
            cached[symbol] = volatility(closes)
        out[i] = cached[symbol]
    return out


def read_bars(settings, symbols: Sequence[str]) -> dict[str, list[tuple[float, float, float]]]:
    if not symbols:
        return {}
    with postgres_errors(), psycopg.connect(settings.database_url, connect_timeout=10) as conn:
        rows = conn.execute(BARS_SQL, {"interval": settings.bar_interval, "symbols": list(symbols)}).fetchall()
    bars: dict[str, list[tuple[float, float, float]]] = {}
    for symbol, ts, close, updated_at in rows:
        bars.setdefault(symbol, []).append((ts.timestamp(), float(close), updated_at.timestamp()))
    return bars


def consume_accesses(settings, *, from_beginning: bool, limit: int | None, idle_timeout_s: float,
                     since: datetime | None = None,
                     progress: Callable[[str], None] = lambda _: None) -> tuple[list[Access], int]:
    """cache.access records from the beginning (or from `since`, or from now) until `limit` or
    `idle_timeout_s` seconds without a new record; returns them and the number that did not decode."""
    codec = CodecRegistry(settings.schema_registry_url).for_topic(TOPIC)
    consumer = Consumer(settings.kafka_config({"group.id": f"algo-memory-record-{uuid.uuid4().hex[:8]}",
                                               "enable.auto.commit": False, "auto.offset.reset": "earliest"}))
    accesses: list[Access] = []
    skipped = 0
    try:
        try:
            metadata = consumer.list_topics(TOPIC, timeout=10)
            topic = metadata.topics.get(TOPIC)
            if topic is None or topic.error is not None or not topic.partitions:
                raise DataError(f"topic {TOPIC} does not exist: run `algo provision`")
            starts = []
            for partition in topic.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)
                starts.append(TopicPartition(TOPIC, partition, low if from_beginning else high))
            if since is not None and not from_beginning:  # the first offset at or after `since` (broker time)
                wanted = [TopicPartition(TOPIC, tp.partition, int(since.timestamp() * 1000)) for tp in starts]
                found = consumer.offsets_for_times(wanted, timeout=10)
                starts = [TopicPartition(TOPIC, f.partition, f.offset if f.offset >= 0 else s.offset)
                          for f, s in zip(found, starts)]
        except KafkaException as error:
            raise ServiceUnavailable(KAFKA, str(error.args[0])) from error
        consumer.assign(starts)
        origin = "the beginning" if from_beginning else f"{since:%Y-%m-%d %H:%M:%S}" if since else "now"
        progress(f"recording {TOPIC} from {origin}"
                 f"{'' if limit is None else f', at most {limit} accesses'}; stops after {idle_timeout_s:g} s idle")
        last_seen = time.monotonic()
        while limit is None or len(accesses) < limit:
            message = consumer.poll(0.5)
            if message is None or message.error():
                if time.monotonic() - last_seen > idle_timeout_s:
                    break
                continue
            last_seen = time.monotonic()
            try:
                record = codec.decode(message.value())
            except CodecError:
                skipped += 1
                continue
            key = record["key"]
            symbol = record.get("symbol") or keys.symbol_of(key)
            accesses.append(Access(record["ts"].timestamp(), key, int(record["size_bytes"]), symbol))
            if len(accesses) % PROGRESS_EVERY == 0:
                progress(f"{len(accesses)} accesses")
    finally:
        consumer.close()
    return accesses, skipped


def record_trace(settings, out: Path, *, from_beginning: bool = False, limit: int | None = None,
                 idle_timeout_s: float = 10.0, since: datetime | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> RecordSummary:
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if idle_timeout_s <= 0:
        raise DataError(f"--idle-timeout must be positive, got {idle_timeout_s}")
    accesses, skipped = consume_accesses(settings, from_beginning=from_beginning, limit=limit,
                                         idle_timeout_s=idle_timeout_s, since=since, progress=progress)
    if not accesses:
        raise DataError(f"no accesses on {TOPIC} before {idle_timeout_s:g} s of silence: is anything reading "
                        "through the store (the bridge, the risk worker)? Try --from-beginning")
    symbols = sorted({a.symbol for a in accesses if a.symbol is not None})
    progress(f"{len(accesses)} accesses; volatility of {len(symbols)} symbol(s) from market_data")
    vols = volatility_as_of(accesses, read_bars(settings, symbols))
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise DataError(f"{out}: the folder {out.parent} does not exist")
    write_trace(out, [a.time_s for a in accesses], [a.key for a in accesses], [a.size for a in accesses], vols)
    return RecordSummary(out, len(accesses), len({a.key for a in accesses}), len(symbols), skipped)
