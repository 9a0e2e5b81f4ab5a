"""`algo replay`: publish real bundled (or CSV) OHLCV data to market.ticks as ticks.

Bars become ticks deterministically (streams.market.ticks); symbols are merged in event-time order.
Speed: 0 publishes as fast as the broker takes it; X > 0 paces event time at X times real time
(for daily data, 86400 replays one trading day per second).

News (`--news PATH`, streams.market.news) goes to news.items keyed by its id, interleaved with the
ticks in event time: an item is published once the replay clock has passed its time (after the ticks
of the same instant). Items before the first tick go out at the start, those after the last tick at
the end, unpaced, so a corpus wider than the bars does not make the replay wait through the gap.
"""
from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, NamedTuple

from confluent_kafka import KafkaException, Producer
from tqdm import tqdm

from streams.market.bars import to_micros
from streams.bus.codecs import CodecRegistry
from streams.market.datasets import BarSeries
from streams.errors import AlgoError, ServiceUnavailable
from streams.outages import KAFKA
from streams.settings import Settings
from streams.market.ticks import TICKS_PER_BAR, merged_ticks

TOPIC = "market.ticks"
NEWS_TOPIC = "news.items"


class Event(NamedTuple):
    """One message of the replay: `paced` is False for news after the last tick (nothing to wait for)."""
    topic: str
    key: str
    record: dict
    paced: bool


def interleave(ticks: Iterable[dict], news: list[dict]) -> Iterator[Event]:
    """Ticks and news (each already in time order) merged in event time; at equal times the ticks
    come first, since an item is published only once the clock has passed its time."""
    pending = iter(news)
    item = next(pending, None)
    any_tick = False
    for tick in ticks:
        any_tick = True
        while item is not None and item["ts"] < tick["ts"]:
            yield Event(NEWS_TOPIC, item["id"], item, True)
            item = next(pending, None)
        yield Event(TOPIC, tick["symbol"], tick, True)
    while item is not None:  # after the last tick; with no ticks at all, news alone keeps its pace
        yield Event(NEWS_TOPIC, item["id"], item, not any_tick)
        item = next(pending, None)


@dataclass
class ReplayReport:
    ticks: int = 0
    news: int = 0
    seconds: float = 0.0
    per_symbol: Counter = field(default_factory=Counter)

    @property
    def ticks_per_second(self) -> float:
        return self.ticks / self.seconds if self.seconds > 0 else 0.0


def replay(
    settings: Settings,
    series: list[BarSeries],
    source: str,
    *,
    speed: float = 0.0,
    limit: int | None = None,
    show_progress: bool = True,
    news: list[dict] | None = None,
) -> ReplayReport:
    """Publishes the series' ticks (at most `limit`) and, when given, the news items (NewsItem records
    in time order, all of them whatever `limit`) interleaved in event time."""
    if speed < 0:
        raise AlgoError("--speed must be >= 0 (0 means as fast as possible)")
    news = news or []
    codecs = CodecRegistry(settings.schema_registry_url)
    codec = {TOPIC: codecs.for_topic(TOPIC), NEWS_TOPIC: codecs.for_topic(NEWS_TOPIC)}
    producer = Producer(settings.kafka_config({
        "linger.ms": 10, "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random",
        # a fresh broker logs a transient "coordinator load in progress" warning, a stopped one an error per
        # connection attempt: failures are reported once, by the checks and delivery callbacks below
        "log_level": 2,
        "queue.buffering.max.messages": 200_000,
    }))
    try:
        try:  # fail in seconds with one line, not after a minute of undelivered ticks
            producer.list_topics(timeout=5)
        except KafkaException as error:
            raise ServiceUnavailable(KAFKA, f"{settings.kafka_bootstrap}: {error.args[0].str()}; is the stack up "
                                            "(`algo stack status`)?") from error
        failures: list[str] = []

        def on_delivery(error, _message) -> None:
            if error is not None:
                failures.append(str(error))

        total = sum(len(s) for s in series) * TICKS_PER_BAR
        total = (min(total, limit) if limit is not None else total) + len(news)
        ticks = merged_ticks(series, source)
        if limit is not None:
            ticks = itertools.islice(ticks, limit)
        first_tick = next(ticks, None)
        # the clock starts at the first tick (news before it goes out at once), or at the first item alone
        clock_origin = first_tick if first_tick is not None else (news[0] if news else None)
        start_us = to_micros(clock_origin["ts"]) if clock_origin is not None else 0
        ticks = itertools.chain([first_tick], ticks) if first_tick is not None else iter(())
        report = ReplayReport()
        started = time.perf_counter()
        clock_started: float | None = None  # once the origin is out (its first encode may wait on the registry)
        published = 0
        with tqdm(total=total, unit="tick" if not news else "msg", disable=not show_progress, desc="replay",
                  mininterval=0.5, delay=0.5) as bar:
            for event in interleave(ticks, news):
                if speed > 0 and event.paced and clock_started is not None:
                    delay = ((to_micros(event.record["ts"]) - start_us) / 1e6 / speed
                             - (time.perf_counter() - clock_started))
                    if delay > 0:
                        producer.poll(0)
                        time.sleep(delay)
                try:
                    value = codec[event.topic].encode(event.record)
                except ServiceUnavailable as error:
                    raise ServiceUnavailable(error.service, f"{settings.schema_registry_url}: {error.detail}; is the "
                                                            "stack up (`algo stack status`)?") from error
                while True:
                    try:
                        producer.produce(event.topic, key=event.key.encode(), value=value, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
                    except KafkaException as error:
                        raise AlgoError(f"cannot publish to {event.topic}: {error}") from error
                producer.poll(0)
                if event.topic == NEWS_TOPIC and event.paced:
                    # acknowledged before any later tick: agents deciding in event time may rely on a news item
                    # being in news.items before the ticks after it (streams.bus.progress)
                    producer.flush(30)
                if clock_started is None and event.record is clock_origin:
                    clock_started = time.perf_counter()
                if event.topic == TOPIC:
                    report.ticks += 1
                    report.per_symbol[event.record["symbol"]] += 1
                else:
                    report.news += 1
                published += 1
                if published % 500 == 0:
                    bar.update(500)
            remaining = producer.flush(60)
            bar.update(published - bar.n)
    finally:
        # not kept alive by a traceback that holds this frame (librdkafka would go on reconnecting)
        del producer
    report.seconds = time.perf_counter() - started
    if remaining or failures:
        what = f"{report.ticks} ticks" if not news else f"{published} messages ({report.ticks} ticks, {report.news} news)"
        raise AlgoError(
            f"{len(failures) + remaining} of {what} were not delivered "
            f"(first error: {failures[0] if failures else 'flush timed out'}); is Kafka up?"
        )
    return report
