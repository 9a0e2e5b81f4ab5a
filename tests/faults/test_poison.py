"""Fault: 10,000 poison messages mixed into market.ticks and news.items during a 100,000-tick replay
(issue 14, scenario 5).

8,000 poison ticks (no magic byte, an unknown schema id, truncated Avro, bytes left over, a NaN price,
a negative price) and 2,000 poison news items (the four framing kinds) are published beside the
valid replay, each under a key of its own. Every one must be dead-lettered, with its reason, once by
each agent that reads its topic (bars for ticks; the analyst and persistence for news); the valid ticks must still make every bar, whole; no worker may crash.
A 5 MB value is taken by the broker (its message.max.bytes is 8 MiB) and reaches the bar agent:
it is dead-lettered without its value (a dead letter must fit the 1 MiB produce limit), with a
reason that says where the original stays.
"""
from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Producer

from streams.bus.codecs import CodecRegistry
from tests import fixtures
from tests.faults.results import record_scenario
from tests.faults.harness import stop_all
from tests.faults.test_kills import assert_none_lost_or_repeated, audit, begin
from tests.kafka_tools import Worker
from tests.streams.test_outages import dead_letters_with_keys

pytestmark = [pytest.mark.integration, pytest.mark.faults]

POISON_TICKS, POISON_NEWS = 8_000, 2_000


def poison_kinds(codec, valid: bytes, record: dict | None) -> list[tuple[bytes, str]]:
    """(value, what the dead letter's error says) for one topic."""
    kinds = [(b"not avro at all", "not Confluent-framed Avro"),
             (b"\x00\x00\x0f\x42\x3f" + valid[5:], "unknown writer schema id 999999"),
             (valid[:-3], "cannot decode"),
             (valid + b"\x01\x02", "2 bytes left over")]
    if record is not None:  # ticks: valid Avro that no bar may take
        kinds += [(codec.encode({**record, "price": float("nan")}), "price nan is not a positive number"),
                  (codec.encode({**record, "price": -12.5}), "price -12.5 is not a positive number")]
    return kinds


@pytest.mark.timeout(600)
def test_ten_thousand_poison_messages_are_dead_lettered_with_reasons_and_the_bars_stay_exact(provisioned, tmp_path):
    run, app_id, starts, replay, workers = begin(provisioned, tmp_path)
    ticks_codec = CodecRegistry(provisioned.schema_registry_url).for_topic("market.ticks")
    news_codec = CodecRegistry(provisioned.schema_registry_url).for_topic("news.items")
    some_tick = fixtures.tick(symbol=f"Z{run}")
    tick_kinds = poison_kinds(ticks_codec, ticks_codec.encode(some_tick), some_tick)
    news_kinds = poison_kinds(news_codec, news_codec.encode(fixtures.news_item()), None)
    poisons = ([("market.ticks", f"ZT{run}-{i}".encode(), *tick_kinds[i % len(tick_kinds)]) for i in range(POISON_TICKS)]
               + [("news.items", f"ZN{run}-{i}".encode(), *news_kinds[i % len(news_kinds)]) for i in range(POISON_NEWS)])
    poisons = [poisons[i] for i in sorted(range(len(poisons)), key=lambda i: (i * 7919) % len(poisons))]  # mixed

    workers["analyst"] = Worker("analyst", tmp_path / "analyst-1.log", ALGO_APP_ID=app_id)
    huge_key = f"ZH{run}".encode()
    try:
        producer = Producer(provisioned.kafka_config({"acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                                      "message.max.bytes": 8 * 1024 * 1024, "log_level": 2}))
        failed: list = []

        def publish_poison():
            for topic, key, value, _ in poisons:
                producer.produce(topic, key=key, value=value, on_delivery=lambda e, _m: e and failed.append(e))
                producer.poll(0)
                time.sleep(0.003)  # spread over the replay
            producer.flush(120)

        poisoner = threading.Thread(target=publish_poison, name="poisoner")
        replay.start_and_wait_for_a_fifth()
        poisoner.start()
        producer.produce("market.ticks", key=huge_key, value=b"\x00" * (5 * 1024 * 1024),
                         on_delivery=lambda e, _m: e and failed.append(e))
        poisoner.join(180)
        assert not failed, failed[:3]
        replay.finish()
        figures = audit(provisioned, replay, starts, run)
        letters = dead_letters_with_keys(provisioned, {key for _, key, _, _ in poisons} | {huge_key})
        huge_letters = [letter for letter in letters if letter["key"] == huge_key]
        letters = [letter for letter in letters if letter["key"] != huge_key]
        reason_of = {key: (topic, why) for topic, key, _, why in poisons}
        agents_of: dict[bytes, list[str]] = {}
        for letter in letters:
            agents_of.setdefault(letter["key"], []).append(letter["agent"])
        wrong = [(letter["key"], letter["agent"], letter["error"]) for letter in letters
                 if reason_of[letter["key"]][1] not in letter["error"]]
        # every agent that reads the topic dead-letters each poison once: bars alone reads market.ticks
        readers = {topic: {tuple(sorted(agents_of.get(key, []))) for t, key, _, _ in poisons if t == topic}
                   for topic in ("market.ticks", "news.items")}
        record_scenario("poison_10000", {
            "what": "8,000 poison ticks and 2,000 poison news items mixed into a 100,000-tick replay; a 5 MB value",
            **figures, "poison_sent": len(poisons), "poison_dead_lettered": len(letters),
            "poison_with_a_dead_letter": len(agents_of),
            "dead_lettered_by": {topic: [list(agents) for agents in sets] for topic, sets in readers.items()},
            "poison_with_wrong_reason": len(wrong),
            "five_mb_value": huge_letters[0]["error"] if huge_letters else f"{len(huge_letters)} dead letters"})
        assert_none_lost_or_repeated(figures)  # the valid replay: nothing of it dead-lettered
        assert len(agents_of) == len(poisons), f"{len(poisons) - len(agents_of)} poison messages not dead-lettered"
        assert readers["market.ticks"] == {("bars",)}, readers
        assert readers["news.items"] == {("analyst", "persistence")}, readers  # each reader once
        assert wrong == [], wrong[:5]
        [huge] = huge_letters
        assert huge["agent"] == "bars" and huge["value"] is None and "5,242,880 bytes, is too large to keep" in huge["error"]
    finally:
        stop_all(workers)  # fails on "Crashed" in a worker's log
