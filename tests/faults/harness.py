"""What the fault scenarios share: a paced publisher with delivery reports, and stopping workers."""
from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

from tests.kafka_tools import Worker, wait_for


class PacedPublisher:
    """(topic, key, value) messages published from a thread at `rate` a second, acks=all and
    idempotence on, with every delivery report kept."""

    def __init__(self, settings, messages: list[tuple[str, bytes, bytes]], rate: float):
        self.messages, self.rate = messages, rate
        self.acknowledged: list[tuple[float, int]] = []  # (monotonic time, index) per delivery without error
        self.failed: list[str] = []
        self.producer = Producer(settings.kafka_config({
            "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5,
            "message.timeout.ms": 300_000, "log_level": 2, "queue.buffering.max.messages": 200_000}))
        self.thread = threading.Thread(target=self._publish, name="publisher")

    def _report(self, index: int):
        def on_delivery(error, _message):
            if error is None:
                self.acknowledged.append((time.monotonic(), index))
            else:
                self.failed.append(str(error))
        return on_delivery

    def _publish(self) -> None:
        begun = time.monotonic()
        for index, (topic, key, value) in enumerate(self.messages):
            while True:
                try:
                    self.producer.produce(topic, key=key, value=value, on_delivery=self._report(index))
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
            ahead = begun + index / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        self.producer.flush(300)

    def start_and_wait_for(self, fraction: float) -> None:
        self.thread.start()
        wait_for(lambda: len(self.acknowledged) >= len(self.messages) * fraction, timeout=120,
                 what=f"{fraction:.0%} of the messages acknowledged")

    def finish(self, timeout: float = 360) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the publisher did not finish within {timeout:.0f} s"
        assert not self.failed, self.failed[:3]

    def seconds_without_acks(self) -> float:
        times = sorted(t for t, _ in self.acknowledged)
        return round(max((b - a for a, b in zip(times, times[1:])), default=0.0), 1)


def stop_all(workers: dict[str, Worker]) -> None:
    """Stops every worker still running, then fails on the first that crashed (its log says so)."""
    crashes = []
    for worker in workers.values():
        try:
            worker.stop()
        except AssertionError as crash:
            crashes.append(crash)
    if crashes:
        raise crashes[0]
