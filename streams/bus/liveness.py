"""Is each consumer group still making progress? Asked of the broker, not of the worker: a Faust
consumer can stop fetching while its process, its event loop and even its heartbeats live on
(faust-streaming issue #175, "consumers slowly die"), so only the group's committed offsets tell.

A group is stalled when it has lag (messages it has not committed) and its committed offsets have
not moved for `stall_after_s`; its lag alarm is raised when its lag has stayed at or above
`lag_alarm_messages` for `lag_alarm_after_s`. LivenessTracker is the rule on plain numbers;
GroupOffsetsReader asks the broker for them.
"""
from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.errors import ServiceUnavailable
from streams.outages import KAFKA
from streams.settings import Settings


@dataclass(frozen=True)
class GroupOffsets:
    committed: int  # the sum of the group's committed offsets: it grows while the group works
    lag: int  # messages on its partitions past what it committed


@dataclass(frozen=True)
class Liveness:
    group: str
    lag: int
    stalled: bool
    idle_s: float  # seconds since the group last committed (or had no lag)
    lag_alarm: bool
    lagging_s: float  # seconds its lag has been at or above the alarm level (0 while below)


class LivenessTracker:
    """Clocks per group, advanced by observe(); forget() restarts a group's clocks (after a restart)."""

    def __init__(self, stall_after_s: float, lag_alarm_messages: int, lag_alarm_after_s: float) -> None:
        self.stall_after_s, self.lag_alarm_messages, self.lag_alarm_after_s = (
            stall_after_s, lag_alarm_messages, lag_alarm_after_s)
        self._progress: dict[str, tuple[int, float]] = {}  # group -> (committed, when it last moved)
        self._lagging_since: dict[str, float] = {}

    def observe(self, at: float, offsets: dict[str, GroupOffsets]) -> dict[str, Liveness]:
        verdicts = {}
        for group, now in offsets.items():
            committed, moved_at = self._progress.get(group, (now.committed, at))
            if now.committed != committed or now.lag == 0:
                moved_at = at
            self._progress[group] = (now.committed, moved_at)
            if now.lag >= self.lag_alarm_messages:
                self._lagging_since.setdefault(group, at)
            else:
                self._lagging_since.pop(group, None)
            idle = at - moved_at
            lagging = at - self._lagging_since[group] if group in self._lagging_since else 0.0
            verdicts[group] = Liveness(group, now.lag, stalled=now.lag > 0 and idle >= self.stall_after_s,
                                       idle_s=idle, lag_alarm=group in self._lagging_since
                                       and lagging >= self.lag_alarm_after_s, lagging_s=lagging)
        return verdicts

    def forget(self, group: str) -> None:
        self._progress.pop(group, None)
        self._lagging_since.pop(group, None)


class GroupOffsetsReader:
    """Committed offsets and lag of consumer groups (blocking; broker errors become ServiceUnavailable)."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self._admin = AdminClient(settings.kafka_config({"log_level": 2}))

    def read(self, groups: list[str]) -> dict[str, GroupOffsets]:
        """Per group, over the partitions it has committed offsets for (none yet: 0 and 0)."""
        try:
            out = {}
            for group in groups:  # the admin API takes one group per request
                answer = self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group)], request_timeout=self.timeout_s)[group].result(
                    timeout=self.timeout_s)
                partitions = [tp for tp in answer.topic_partitions or [] if tp.offset >= 0 and tp.error is None]
                ends = {}
                if partitions:
                    futures = self._admin.list_offsets({TopicPartition(tp.topic, tp.partition): OffsetSpec.latest()
                                                        for tp in partitions}, request_timeout=self.timeout_s)
                    ends = {(tp.topic, tp.partition): f.result(timeout=self.timeout_s).offset
                            for tp, f in futures.items()}
                out[group] = GroupOffsets(
                    committed=sum(tp.offset for tp in partitions),
                    lag=sum(max(0, ends.get((tp.topic, tp.partition), tp.offset) - tp.offset) for tp in partitions))
            return out
        except KafkaException as error:
            raise ServiceUnavailable(KAFKA, f"{self.settings.kafka_bootstrap}: {error.args[0].str()}") from error
        except TimeoutError as error:
            raise ServiceUnavailable(KAFKA, f"{self.settings.kafka_bootstrap}: no answer in {self.timeout_s:.0f} s") \
                from error
