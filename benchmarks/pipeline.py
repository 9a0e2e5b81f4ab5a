"""The whole loop at market speed, on the real stack: one JSON object with the sustained
throughput of every agent together, tick-to-decision latency, and Faust against a raw
confluent-kafka loop. Needs nothing running: it starts the stack (`algo stack up`) and provisions.

    .venv/bin/python benchmarks/pipeline.py [--json] [--dataset stocks] [--symbols ...]
        [--rate 1000] [--latency-seconds 20] [--echo-messages 40000]

- sustained_ticks_per_s: `algo demo --speed 0` (all agents, bundled data and news): ticks
  published / (replay seconds + seconds until every worker's consumer lag has drained);
  `drain_seconds` and the lag per worker when the replay ended are reported with it.
- latency_ms: benchmarks/latency.py at `--rate` ticks/s (bars -> technical -> consensus in one
  `algo worker signals`, one-second bars: p50, p99 and max from the closing tick's publish to
  the decision's receipt).
- scale_out: ticks/s through the bar agent with 1 and 2 processes in one consumer group.
- faust_vs_raw: the same decode -> transform -> encode -> produce over the same market.ticks
  messages, in a Faust agent built like ours (benchmarks/faust_echo.py) and in a plain
  confluent-kafka loop (the project's AvroCodec in both).
Writes the object to benchmarks/results/pipeline.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from benchmarks import latency  # noqa: E402
from benchmarks.faust_echo import ECHO_TOPIC, transform  # noqa: E402
from streams.bus.codecs import CodecRegistry  # noqa: E402
from streams.market.bars import from_micros  # noqa: E402
from streams.settings import get_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"


def git_commit() -> str:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return commit + ("-dirty" if dirty else "") if commit else "unknown"


def topic_ends(consumer: Consumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in sorted(partitions)]


def total(offsets: list[TopicPartition]) -> int:
    return sum(tp.offset for tp in offsets)


def publish(settings, topic: str, messages) -> None:
    """(key, value) pairs to `topic` as fast as the producer takes them (murmur2, like Faust)."""
    producer = Producer(settings.kafka_config({"linger.ms": 20, "partitioner": "murmur2_random", "log_level": 3}))
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def publish_ticks(settings, codec, n: int) -> None:
    run = uuid.uuid4().hex[:4].upper()
    t0 = 1_600_000_000_000_000

    def ticks():
        for i in range(n):
            symbol = f"E{run}{i % 12:02d}"
            yield symbol.encode(), codec.encode({"symbol": symbol, "ts": from_micros(t0 + i * 1_000_000),
                                                 "price": 100.0 + i % 50, "size": 1.0, "source": f"bench-{run}",
                                                 "seq": i})

    publish(settings, "market.ticks", ticks())


def raw_loop(settings, codec, starts: list[TopicPartition], n: int) -> float:
    """Messages/s of decode -> transform -> encode -> produce with confluent-kafka alone."""
    consumer = Consumer(settings.kafka_config({"group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                                               "enable.auto.commit": False, "log_level": 3}))
    producer = Producer(settings.kafka_config({"linger.ms": 5, "log_level": 3}))
    consumer.assign(starts)
    done, first = 0, None
    try:
        while done < n:
            for message in consumer.consume(500, timeout=1.0):
                if message.error():
                    continue
                first = first or time.perf_counter()
                value = codec.encode(transform(codec.decode(message.value())))
                while True:
                    try:
                        producer.produce(ECHO_TOPIC, key=message.key(), value=value)
                        break
                    except BufferError:
                        producer.poll(0.05)
                done += 1
                if done == n:
                    break
            producer.poll(0)
        producer.flush(60)
        return n / (time.perf_counter() - first)
    finally:
        consumer.close()


def faust_loop(settings, starts: list[TopicPartition], n: int, log: Path) -> float:
    """Messages/s of the same work in a Faust agent (benchmarks/faust_echo.py), timed from its
    first output to its n-th, watching bench.echo's end offsets."""
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    probe = Consumer(settings.kafka_config({"group.id": f"{app_id}-echo", "enable.auto.commit": False,
                                            "log_level": 3}))
    probe.commit(offsets=starts, asynchronous=False)  # the agent's group starts at the benchmark's messages
    base = total(topic_ends(probe, ECHO_TOPIC))
    with open(log, "wb") as handle:
        worker = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "faust_echo.py")], cwd=ROOT,
                                  env={**__import__("os").environ, "ALGO_APP_ID": app_id}, stdout=handle,
                                  stderr=subprocess.STDOUT)
    try:
        first = None
        deadline = time.monotonic() + 300
        while True:
            produced = total(topic_ends(probe, ECHO_TOPIC)) - base
            now = time.perf_counter()
            if produced > 0 and first is None:
                first = (now, produced)
            if produced >= n:
                return (n - first[1]) / (now - first[0])
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Faust echo worker stopped or stalled; see {log}")
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(30)
        probe.close()


def faust_vs_raw(settings, n: int, log_dir: Path) -> dict:
    codec = CodecRegistry(settings.schema_registry_url).for_topic("market.ticks")
    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    if ECHO_TOPIC not in admin.list_topics(timeout=10).topics:
        for future in admin.create_topics([NewTopic(ECHO_TOPIC, 3, 1, config={"retention.ms": "3600000"})]).values():
            future.result(timeout=30)
    probe = Consumer(settings.kafka_config({"group.id": "bench-probe", "log_level": 3}))
    starts = topic_ends(probe, "market.ticks")
    probe.close()
    publish_ticks(settings, codec, n)
    raw = raw_loop(settings, codec, starts, n)
    faust = faust_loop(settings, starts, n, log_dir / "faust-echo.log")
    return {"messages": n, "faust_msgs_per_s": round(faust, 1), "raw_msgs_per_s": round(raw, 1),
            "ratio": round(faust / raw, 3)}


def group_committed(settings, group: str, topic: str) -> int:
    from streams.bus.progress import StreamProgress

    return sum(max(offset, 0) for offset in StreamProgress(settings).committed(group, topic).values())


def scale_out(settings, counts: tuple[int, ...], n: int, log_dir: Path) -> list[dict]:
    """Ticks/s through the bar agent with 1, 2, ... processes in one consumer group
    (benchmarks/scale_out.py measures every symbol-keyed agent the same way)."""
    from benchmarks.scale_out import measure

    rows = []
    for count in counts:
        row = measure(settings, "bars", count, n, log_dir)
        rows.append({"bar_workers": count, "ticks": n, "seconds": row["seconds"], "ticks_per_s": row["messages_per_s"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    parser.add_argument("--dataset", default="stocks")
    parser.add_argument("--symbols", nargs="*", default=[])
    parser.add_argument("--rate", type=int, default=1000, help="Ticks/s for the latency run.")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--echo-messages", type=int, default=40_000)
    args = parser.parse_args()
    say = (lambda _: None) if args.json else (lambda s: print(f"pipeline: {s}", flush=True))
    settings = get_settings()
    log_dir = settings.run_dir / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    from ops.demo import run_demo

    say("the demo at full speed (all agents)")
    demo = run_demo(settings, args.dataset, args.symbols, quiet=True, speed=0.0)
    say(f"sustained {demo['sustained_ticks_per_second']:,.0f} ticks/s; faust vs raw on {args.echo_messages:,} messages")
    echo = faust_vs_raw(settings, args.echo_messages, log_dir)
    say(f"faust {echo['faust_msgs_per_s']:,.0f} msgs/s, raw {echo['raw_msgs_per_s']:,.0f} msgs/s; latency at "
        f"{args.rate:,} ticks/s")
    timed = latency.run(args.rate, args.latency_seconds, 10, settings, log_dir)
    say("the bar agent with 1 and 2 processes")
    scaling = scale_out(settings, (1, 2), args.echo_messages, log_dir)
    result = {
        "benchmark": "pipeline",
        "commit": git_commit(),
        "goals": {"sustained_ticks_per_s": ">= 5000 (every group's lag drained within 2 s of the replay's end)",
                  "latency_ms": "p99 <= 50 at 1,000 ticks/s", "faust_vs_raw": "ratio >= 0.5"},
        "sustained_ticks_per_s": demo["sustained_ticks_per_second"],
        "sustained": {"dataset": args.dataset, "symbols": demo["symbols"], "ticks": demo["ticks_published"],
                      "news": demo["news_published"], "replay_seconds": demo["replay_seconds"],
                      "publish_ticks_per_s": demo["ticks_per_second"], "drain_seconds": demo["drain_seconds"],
                      "lag_at_replay_end": demo["lag_at_replay_end"], "decisions": demo["decisions"],
                      "digest": demo["digest"]["digest"], "trading_loop_seconds": demo["trading_loop_seconds"]},
        "latency_ms": {"rate": args.rate, "achieved_rate": timed["achieved_ticks_per_second"],
                       "decisions_timed": timed["decisions_timed"], "p50": timed["p50_ms"], "p99": timed["p99_ms"],
                       "max": timed["max_ms"], "path": "ticks -> bars -> technical -> consensus (algo worker signals)"},
        "faust_vs_raw": echo,
        "scale_out": scaling,
        "seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
