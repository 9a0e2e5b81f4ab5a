"""Dead letters: a message an agent cannot process is kept, raw, with why, and the agent goes on.

`algo deadletter list|show|replay` reads them back (a plain confluent-kafka consumer on the one
partition of `dead-letter`) and re-drives chosen ones to the partition they came from, once the cause
is fixed. A dead letter's id is its place in the dead-letter topic, "PARTITION:OFFSET"."""
from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator

from streams.errors import AlgoError, CodecError, ServiceUnavailable
from streams.settings import Settings

DEAD_LETTER_TOPIC = "dead-letter"
REPLAYED_FROM_HEADER = "algo-replayed-from"
# the largest value a dead letter keeps: the letter must fit the producers' 1 MiB request limit
# (aiokafka's max_request_size), while the broker takes messages of up to 8 MiB
MAX_KEPT_VALUE_BYTES = 512 * 1024


def dead_letter_record(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, agent: str, error: Exception
) -> dict:
    """The DeadLetter message (schemas/avro/DeadLetter.avsc) for one rejected message. A value over
    MAX_KEPT_VALUE_BYTES is not copied (the reason says where the original is)."""
    reason = str(error) or repr(error)
    if value is not None and len(value) > MAX_KEPT_VALUE_BYTES:
        reason += (f" [the value, {len(value):,} bytes, is too large to keep in a dead letter: "
                   f"it stays at {topic}[{partition}]@{offset}]")
        value = None
    return {
        "source_topic": topic,
        "partition": int(partition),
        "offset": int(offset),
        "ts": datetime.now(timezone.utc),
        "agent": agent,
        "error_type": type(error).__name__,
        "error": reason[:10_000],
        "key": bytes(key)[:MAX_KEPT_VALUE_BYTES] if key is not None else None,
        "value": bytes(value) if value is not None else None,
    }


class DeadLetterError(AlgoError):
    """A dead-letter id, selector or replay that cannot be carried out."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as read back: where it sits in `dead-letter` and the record kept there."""

    partition: int
    offset: int
    record: dict

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def source(self) -> str:
        return f"{self.record['source_topic']}[{self.record['partition']}]@{self.record['offset']}"

    def summary(self) -> dict:
        """The JSON-ready row `list` prints."""
        value = self.record["value"]
        return {"id": self.id, "ts": self.record["ts"].isoformat(), "agent": self.record["agent"],
                "source_topic": self.record["source_topic"], "source_partition": self.record["partition"],
                "source_offset": self.record["offset"], "error_type": self.record["error_type"],
                "error": self.record["error"], "value_bytes": len(value) if value is not None else None}

    def detail(self, *, full: bool = False, preview_bytes: int = 64) -> dict:
        """The JSON-ready object `show` prints: the summary, the key, and the value as base64 (the
        first `preview_bytes` unless `full`)."""
        key, value = self.record["key"], self.record["value"]
        shown = value if full or value is None else value[:preview_bytes]
        return {**self.summary(),
                "key": key.decode(errors="replace") if key is not None else None,
                "value_base64": base64.b64encode(shown).decode() if shown is not None else None,
                "value_truncated": value is not None and shown is not None and len(shown) < len(value)}


def parse_id(text: str) -> tuple[int, int]:
    """"P:O" -> (P, O), with a one-line error naming what is wrong."""
    match = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if match is None:
        raise DeadLetterError(f"dead-letter id {text!r}: expected PARTITION:OFFSET as `algo deadletter list` shows "
                              "it, e.g. 0:42")
    return int(match.group(1)), int(match.group(2))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A moment from an ISO 8601 time (UTC when it names no zone) or an age ("90s", "30m", "2h", "7d")."""
    now = now or datetime.now(timezone.utc)
    if (match := _DURATION.fullmatch(text.strip())) is not None:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DeadLetterError(f"--since {text!r}: expected an ISO 8601 time (2026-12-01T09:30) or an age "
                              "such as 90s, 30m, 2h, 7d") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Selector:
    """Which dead letters a command is about; every given field must match."""

    topic: str | None = None
    agent: str | None = None
    since: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        record = letter.record
        return ((self.topic is None or record["source_topic"] == self.topic)
                and (self.agent is None or record["agent"] == self.agent)
                and (self.since is None or record["ts"] >= self.since))

    @property
    def empty(self) -> bool:
        return self.topic is None and self.agent is None and self.since is None


def _kafka_error(error: Exception) -> AlgoError:
    return ServiceUnavailable("kafka", str(error))


def read_dead_letters(settings: Settings, selector: Selector = Selector(), *, ids: Iterable[str] = (),
                      limit: int | None = None, newest_first: bool = False,
                      timeout_s: float = 10.0) -> list[DeadLetter]:
    """The dead letters present now (up to each partition's end when the read began) that match
    `selector`, or exactly those named by `ids` (an unknown id is an error). Oldest first, unless
    `newest_first` (then `limit` keeps the newest)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from streams.bus.codecs import CodecRegistry

    wanted = {parse_id(i) for i in ids}
    codec = CodecRegistry(settings.schema_registry_url).for_topic(DEAD_LETTER_TOPIC)
    consumer = Consumer(settings.kafka_config({
        "group.id": f"algo-deadletter-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.partition.eof": True, "auto.offset.reset": "earliest"}))
    try:
        metadata = consumer.list_topics(DEAD_LETTER_TOPIC, timeout=timeout_s)
        topic = metadata.topics[DEAD_LETTER_TOPIC]
        if topic.error is not None:
            raise DeadLetterError(f"topic {DEAD_LETTER_TOPIC!r} does not exist ({topic.error.str()}); "
                                  "see `algo provision`")
        ends: dict[int, tuple[int, int]] = {}
        for partition in sorted(topic.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(DEAD_LETTER_TOPIC, partition), timeout=timeout_s)
            if high > low:
                ends[partition] = (low, high)
        for partition, offset in sorted(wanted):
            low, high = ends.get(partition, (0, 0))
            if not low <= offset < high:
                raise DeadLetterError(f"dead-letter id {partition}:{offset} is not in {DEAD_LETTER_TOPIC} "
                                      f"(partition {partition} holds offsets {low}..{high - 1} now)"
                                      if high > low else
                                      f"dead-letter id {partition}:{offset} is not in {DEAD_LETTER_TOPIC} "
                                      f"(partition {partition} is empty)")
        if wanted:
            starts = {p: min(o for q, o in wanted if q == p) for p in {p for p, _ in wanted}}
            stops = {p: max(o for q, o in wanted if q == p) + 1 for p in starts}
        else:
            starts = {p: low for p, (low, _) in ends.items()}
            stops = {p: high for p, (_, high) in ends.items()}
        if not starts:
            return []
        consumer.assign([TopicPartition(DEAD_LETTER_TOPIC, p, o) for p, o in starts.items()])
        letters: list[DeadLetter] = []
        remaining = dict(stops)
        for message in _messages(consumer, remaining, timeout_s):
            if wanted and (message.partition(), message.offset()) not in wanted:
                continue
            try:
                record = codec.decode(message.value())
            except CodecError as error:  # a dead letter no longer readable is shown, not skipped in silence
                record = {"source_topic": "?", "partition": -1, "offset": -1,
                          "ts": datetime.fromtimestamp(message.timestamp()[1] / 1000, timezone.utc),
                          "agent": "?", "error_type": "CodecError", "error": f"dead letter unreadable: {error}",
                          "key": None, "value": message.value()}
            letter = DeadLetter(message.partition(), message.offset(), record)
            if wanted or selector.matches(letter):
                letters.append(letter)
        letters.sort(key=lambda letter: (letter.record["ts"], letter.partition, letter.offset))
        if newest_first:
            letters.reverse()
        return letters[:limit] if limit is not None else letters
    except KafkaException as error:
        raise _kafka_error(error) from error
    finally:
        consumer.close()


def _messages(consumer, stops: dict[int, int], timeout_s: float) -> Iterator:
    """Messages of the assigned partitions until each reaches its stop offset."""
    from confluent_kafka import KafkaError

    quiet_polls = 0
    while stops:
        message = consumer.poll(1.0)
        if message is None:
            quiet_polls += 1
            if quiet_polls > timeout_s:
                raise ServiceUnavailable("kafka", f"no message from {DEAD_LETTER_TOPIC} in {timeout_s:.0f} s "
                                                  f"though offsets up to {stops} were expected")
            continue
        quiet_polls = 0
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                stops.pop(message.partition(), None)
                continue
            raise ServiceUnavailable("kafka", str(message.error()))
        if message.offset() >= stops.get(message.partition(), -1):
            stops.pop(message.partition(), None)
            continue
        yield message
        if message.offset() + 1 >= stops.get(message.partition(), -1):
            stops.pop(message.partition(), None)


@dataclass(frozen=True)
class ReplayOutcome:
    """One dead letter re-driven (or, in a dry run, that would be)."""

    id: str
    source_topic: str
    partition: int
    offset: int | None  # where it landed; None in a dry run

    def as_dict(self) -> dict:
        return {"id": self.id, "topic": self.source_topic, "partition": self.partition, "offset": self.offset}


def replay_dead_letters(settings: Settings, letters: list[DeadLetter], *, dry_run: bool = False,
                        progress: Callable[[ReplayOutcome], None] = lambda _: None) -> list[ReplayOutcome]:
    """Publishes each dead letter's raw key and value again to the topic and partition it came from,
    with the header `algo-replayed-from: P:O`, through an idempotent producer with acks=all; returns
    once every one is acknowledged. A letter whose source is unknown, or that carried no value, is
    refused before anything is sent."""
    from confluent_kafka import KafkaException, Producer

    for letter in letters:
        if letter.record["partition"] < 0 or letter.record["value"] is None:
            raise DeadLetterError(f"dead letter {letter.id} cannot be replayed: "
                                  + ("its source is unknown" if letter.record["partition"] < 0 else
                                     "it keeps no value (none, or one too large to keep: see its error)"))
    if dry_run:
        outcomes = [ReplayOutcome(l.id, l.record["source_topic"], l.record["partition"], None) for l in letters]
        for outcome in outcomes:
            progress(outcome)
        return outcomes
    producer = Producer(settings.kafka_config({"acks": "all", "enable.idempotence": True, "linger.ms": 5}))
    landed: dict[str, ReplayOutcome] = {}
    failures: list[str] = []

    def delivered(letter: DeadLetter):
        def report(error, message) -> None:
            if error is not None:
                failures.append(f"{letter.id}: {error}")
                return
            outcome = ReplayOutcome(letter.id, message.topic(), message.partition(), message.offset())
            landed[letter.id] = outcome
            progress(outcome)
        return report

    try:
        for letter in letters:
            record = letter.record
            while True:
                try:
                    producer.produce(record["source_topic"], value=record["value"], key=record["key"],
                                     partition=record["partition"],
                                     headers=[(REPLAYED_FROM_HEADER, letter.id.encode())],
                                     on_delivery=delivered(letter))
                    break
                except BufferError:
                    producer.poll(0.5)
            producer.poll(0)
        unsent = producer.flush(60)
    except KafkaException as error:
        raise _kafka_error(error) from error
    if failures or unsent:
        raise ServiceUnavailable("kafka", f"{len(failures) + unsent} of {len(letters)} replays not acknowledged"
                                          + (f" ({failures[0]})" if failures else ""))
    return [landed[letter.id] for letter in letters]
