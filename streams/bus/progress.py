"""How far the app's consumer groups have come on a topic, asked of the broker (confluent-kafka's
AdminClient): the barrier that lets an agent decide in event time without guessing from arrival order.

The rule (README, "Event time"): a source publishes in event-time order across topics (`algo replay`
waits for a news item's acknowledgement before it publishes later ticks), and Faust flushes a
worker's producer before it commits its offsets. So once every group that runs an upstream agent
has committed at least the end offsets a topic had when we asked, everything that topic held then
has been processed and what that produced is in the downstream topics. `drained` answers that.

A group with no committed offset on a partition has processed nothing there since it joined: with
ALGO_OFFSET_RESET=latest it started at the end and is not waited for; with earliest it is.
"""
from __future__ import annotations

import asyncio

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.errors import ServiceUnavailable
from streams.outages import KAFKA
from streams.settings import Settings

ACTIVE_STATES = (ConsumerGroupState.STABLE, ConsumerGroupState.PREPARING_REBALANCING,
                 ConsumerGroupState.COMPLETING_REBALANCING)


class StreamProgress:
    """Blocking queries (run them in a thread from an event loop); broker errors become ServiceUnavailable."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self._admin = AdminClient(settings.kafka_config({"log_level": 2}))
        self._partitions: dict[str, list[int]] = {}

    def _wait(self, futures):
        try:
            return {key: future.result(timeout=self.timeout_s) for key, future in futures.items()}
        except KafkaException as error:
            raise ServiceUnavailable(KAFKA, f"{self.settings.kafka_bootstrap}: {error.args[0].str()}") from error
        except TimeoutError as error:  # concurrent.futures' on 3.11 is the builtin
            raise ServiceUnavailable(KAFKA, f"{self.settings.kafka_bootstrap}: no answer in {self.timeout_s:.0f} s") from error

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            try:
                metadata = self._admin.list_topics(topic, timeout=self.timeout_s)
            except KafkaException as error:
                raise ServiceUnavailable(KAFKA, f"{self.settings.kafka_bootstrap}: {error.args[0].str()}") from error
            found = metadata.topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                raise ServiceUnavailable(KAFKA, f"topic {topic} is not there (run `algo provision`)")
            self._partitions[topic] = sorted(found.partitions)
        return self._partitions[topic]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """partition -> the offset the next record appended there will get."""
        requests = {TopicPartition(topic, p): OffsetSpec.latest() for p in self.partitions(topic)}
        answers = self._wait(self._admin.list_offsets(requests))
        return {tp.partition: info.offset for tp, info in answers.items()}

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """partition -> the group's committed offset (-1: none)."""
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in self.partitions(topic)])
        [answer] = self._wait(self._admin.list_consumer_group_offsets([request])).values()
        return {tp.partition: tp.offset for tp in answer.topic_partitions}

    def active_groups(self, candidates: set[str]) -> set[str]:
        """The candidates that have members now (a worker is running them)."""
        [listing] = self._wait({"groups": self._admin.list_consumer_groups(states=set(ACTIVE_STATES))}).values()
        return {group.group_id for group in listing.valid} & set(candidates)

    def drained(self, topic: str, groups: set[str], ends: dict[int, int] | None = None) -> bool:
        """True when every group has committed `topic` up to `ends` (default: its end offsets now)."""
        ends = self.end_offsets(topic) if ends is None else ends
        waits_for_unstarted = self.settings.offset_reset == "earliest"
        for group in groups:
            committed = self.committed(group, topic)
            for partition, end in ends.items():
                offset = committed.get(partition, -1)
                if offset < 0 and not waits_for_unstarted:
                    continue
                if max(offset, 0) < end:
                    return False
        return True

    def read_through(self, topic: str, group: str, processed: dict[int, int], ends: dict[int, int]) -> bool:
        """True when an agent of `group` has handled `topic` up to `ends`: `processed` holds the next
        offset after the last message it handled, per partition; a partition it has not touched since
        it started is judged by the group's committed offset (Faust commits only what every agent of the
        worker has handled, so an untouched partition has committed no further than where it began)."""
        untouched = {p: end for p, end in ends.items() if p not in processed}
        if any(processed[p] < end for p, end in ends.items() if p in processed):
            return False
        return not untouched or self.drained(topic, {group}, untouched)

    def close(self) -> None:
        self._admin = None


async def wait_drained(progress: StreamProgress, topic: str, groups: set[str], every_s: float = 0.02) -> None:
    """Waits (off the event loop) until every group has committed `topic` as far as it ends now."""
    ends = await asyncio.to_thread(progress.end_offsets, topic)
    while not await asyncio.to_thread(progress.drained, topic, groups, ends):
        await asyncio.sleep(every_s)


async def wait_read_through(progress: StreamProgress, topic: str, group: str, processed: dict[int, int],
                            every_s: float = 0.02) -> None:
    """Waits until an agent that records its handled offsets in `processed` has read `topic` as far as it
    ends now (see StreamProgress.read_through)."""
    ends = await asyncio.to_thread(progress.end_offsets, topic)
    while not await asyncio.to_thread(progress.read_through, topic, group, dict(processed), ends):
        await asyncio.sleep(every_s)
