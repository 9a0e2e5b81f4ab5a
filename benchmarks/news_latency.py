"""News-to-vote latency through Kafka: news.items -> analyst agent -> agent.signals.

One `algo worker analyst` process runs (the offline scorer: MiniLM embedding, pgvector as-of retrieval,
the classifier, the vote record). This script publishes news items about the five bundled companies at
a steady rate, each with a fresh id and a publication time in a window of its own (so the as-of
retrieval has a growing memory to search, as in a live feed), and times each item from its publish call
to the moment this script receives the analyst's vote on it. Warm-up: one item is published and its
vote awaited first (the worker loads the embedding model and the scorer on its first item, ~8 s), then
the first WARM_UP timed items are dropped too. The rows it wrote are deleted at the end.
Needs the local stack (`algo stack up && algo provision`).

    .venv/bin/python benchmarks/news_latency.py [--rate 5] [--items 200] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg
from confluent_kafka import Consumer, Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.bus.codecs import CodecRegistry  # noqa: E402
from streams.settings import get_settings  # noqa: E402
from benchmarks.workers import start_worker  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "news_latency.json"
WARM_UP = 10
COMPANIES = ("Apple", "Microsoft", "IBM", "Google", "Facebook")
PHRASES = ("reports quarterly revenue above estimates", "cuts its full-year outlook", "names a new chief financial officer",
           "faces a patent lawsuit over its software", "announces a share buyback", "recalls a product after complaints",
           "opens a new data centre in Europe", "shares slip after an analyst downgrade")


def run(rate: float, count: int, settings, log_dir: Path) -> dict:
    run_id = f"bench-news-{uuid.uuid4().hex[:8]}"
    codecs = CodecRegistry(settings.schema_registry_url)
    news_codec, signal_codec = codecs.for_topic("news.items"), codecs.for_topic("agent.signals")
    worker = start_worker("analyst", log_dir / "news-latency.log", {"ALGO_APP_ID": run_id, "ALGO_OFFSET_RESET": "latest"})
    consumer = Consumer(settings.kafka_config({"group.id": run_id, "auto.offset.reset": "latest", "log_level": 3,
                                               "fetch.wait.max.ms": 5}))
    consumer.subscribe(["agent.signals"])
    while not consumer.assignment():
        consumer.poll(0.1)
    received: dict[str, float] = {}
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time()
            signal = signal_codec.decode(message.value())
            ref = signal["input_refs"][0] if signal["input_refs"] else ""
            if signal["agent"] == "analyst" and ref.startswith(f"news:{run_id}-"):
                received.setdefault(ref.removeprefix("news:"), now)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = Producer(settings.kafka_config({"linger.ms": 1, "log_level": 3}))
    base = datetime(2035, 1, 1, tzinfo=timezone.utc) + timedelta(days=30 * (uuid.uuid4().int % 1000))
    sent: dict[str, float] = {}
    rng = np.random.default_rng(0)
    first = {"id": f"{run_id}-warm", "ts": base - timedelta(days=1), "source": "bench", "headline": "Apple opens a store",
             "body": "", "symbols": [], "url": None}
    producer.produce("news.items", key=first["id"].encode(), value=news_codec.encode(first))
    producer.flush(30)
    deadline = time.time() + 120
    while first["id"] not in received and time.time() < deadline:
        time.sleep(0.1)
    if first["id"] not in received:
        raise SystemExit("the analyst did not vote on the warm-up item within 120 s")
    started = time.time()
    for n in range(count):
        delay = started + n / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        company = COMPANIES[n % len(COMPANIES)]
        item = {"id": f"{run_id}-{n}", "ts": base + timedelta(hours=3 * n), "source": "bench",
                "headline": f"{company} {PHRASES[int(rng.integers(len(PHRASES)))]}", "body": "", "symbols": [],
                "url": None}
        sent[item["id"]] = time.time()
        producer.produce("news.items", key=item["id"].encode(), value=news_codec.encode(item))
        producer.poll(0)
    producer.flush(30)
    deadline = time.time() + 60
    while len(received) < count + 1 and time.time() < deadline:  # + the warm-up item
        time.sleep(0.2)
    stop.set()
    reader.join()
    consumer.close()
    worker.terminate()
    worker.wait(30)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM news WHERE id LIKE %s", (f"{run_id}-%",))
    timed = [(received[i] - sent[i]) * 1000 for i in sent if i in received and int(i.rsplit("-", 1)[1]) >= WARM_UP]
    # (the warm-up item is not in `sent`)
    values = np.array(timed) if timed else np.array([np.nan])
    received.pop(first["id"], None)
    return {"items_per_second": rate, "items": count, "votes_received": len(received), "timed": len(timed),
            "p50_ms": round(float(np.percentile(values, 50)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1),
            "max_ms": round(float(values.max()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="news items per second")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    log_dir = settings.run_dir / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    result = run(args.rate, args.items, settings, log_dir)
    output = {"benchmark": "news_to_vote_latency", "runs": [result]}
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    if args.json:
        print(json.dumps(output))
        return
    print(f"{result['items_per_second']} items/s, {result['votes_received']} of {result['items']} voted on, "
          f"{result['timed']} timed: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
