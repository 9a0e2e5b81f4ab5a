"""`algo replay`: publish real bundled (or CSV) OHLCV data to market.ticks as ticks.

Bars become ticks deterministically (streams.market.ticks); symbols are merged in event-time order.
Speed: 0 publishes as fast as the broker takes it; X > 0 paces event time at X times real time
(for daily data, 86400 replays one trading day per second).
"""
from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

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


@dataclass
class ReplayReport:
    ticks: int = 0
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
) -> ReplayReport:
    if speed < 0:
        raise AlgoError("--speed must be >= 0 (0 means as fast as possible)")
    codec = CodecRegistry(settings.schema_registry_url).for_topic(TOPIC)
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
        total = min(total, limit) if limit is not None else total
        ticks = merged_ticks(series, source)
        if limit is not None:
            ticks = itertools.islice(ticks, limit)
        report = ReplayReport()
        started = time.perf_counter()
        first_event_us: int | None = None
        with tqdm(total=total, unit="tick", disable=not show_progress, desc="replay", mininterval=0.5,
                  delay=0.5) as bar:
            for tick in ticks:
                if speed > 0:
                    event_us = to_micros(tick["ts"])
                    first_event_us = event_us if first_event_us is None else first_event_us
                    delay = (event_us - first_event_us) / 1e6 / speed - (time.perf_counter() - started)
                    if delay > 0:
                        producer.poll(0)
                        time.sleep(delay)
                try:
                    value = codec.encode(tick)
                except ServiceUnavailable as error:
                    raise ServiceUnavailable(error.service, f"{settings.schema_registry_url}: {error.detail}; is the "
                                                            "stack up (`algo stack status`)?") from error
                while True:
                    try:
                        producer.produce(TOPIC, key=tick["symbol"].encode(), value=value, on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
                    except KafkaException as error:
                        raise AlgoError(f"cannot publish to {TOPIC}: {error}") from error
                producer.poll(0)
                report.ticks += 1
                report.per_symbol[tick["symbol"]] += 1
                if report.ticks % 500 == 0:
                    bar.update(500)
            remaining = producer.flush(60)
            bar.update(report.ticks - bar.n)
    finally:
        # not kept alive by a traceback that holds this frame (librdkafka would go on reconnecting)
        del producer
    report.seconds = time.perf_counter() - started
    if remaining or failures:
        raise AlgoError(
            f"{len(failures) + remaining} of {report.ticks} ticks were not delivered "
            f"(first error: {failures[0] if failures else 'flush timed out'}); is Kafka up?"
        )
    return report
