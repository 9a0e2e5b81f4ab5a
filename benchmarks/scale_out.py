"""Scale-out by partitions: messages/s through one agent with 1 and 2 worker processes in one
consumer group, on the real stack (start it first: `algo stack up`). Quant serves the demo's
model, trained first (as the demo does) when none is registered.

    .venv/bin/python benchmarks/scale_out.py [--json] [--agents bars,technical,quant,persistence]
        [--workers 1,2] [--ticks 40000] [--bars 6000]

For each agent and worker count: a fresh app id (fresh group and tables), the workers start at the
end of the agent's input topic, then the input is published as fast as possible (ticks for bars;
daily bars of 24 symbols for technical, quant and persistence) and the run is timed from the
first publish until the group has committed every message. The workers share market.*'s
TOPIC_PARTITIONS partitions (3 by default): with 2 workers one holds two partitions, the other one.
Writes benchmarks/results/scale_out.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer  # noqa: E402

from benchmarks.pipeline import git_commit, group_committed, publish, publish_ticks, topic_ends, total  # noqa: E402
from streams.bus.codecs import CodecRegistry  # noqa: E402
from streams.market.bars import from_micros  # noqa: E402
from streams.settings import get_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "scale_out.json"
INPUT_OF = {"bars": "market.ticks", "technical": "market.bars", "quant": "market.bars", "persistence": "market.bars"}
DAY_US = 86_400 * 1_000_000


def publish_bars(settings, codec, n: int, symbols: int = 24) -> None:
    """`n` daily bars of this deployment's interval, round-robin over `symbols` symbols in time order
    (a random walk, so the signal agents have something to vote on)."""
    run = uuid.uuid4().hex[:4].upper()
    t0, price = 1_262_304_000_000_000, [100.0] * symbols  # 2010-01-01

    def bars():
        for i in range(n):
            s, day = i % symbols, i // symbols
            symbol = f"BENCH{run}{s:02d}"
            open_, price[s] = price[s], max(1.0, price[s] * (1 + ((i * 7919) % 13 - 6) / 200.0))
            yield symbol.encode(), codec.encode({
                "symbol": symbol, "interval": settings.bar_interval, "ts": from_micros(t0 + day * DAY_US),
                "open": open_, "high": max(open_, price[s]) * 1.01, "low": min(open_, price[s]) * 0.99,
                "close": price[s], "volume": 1000.0 + i % 97, "tick_count": 4})

    publish(settings, "market.bars", bars())


def measure(settings, agent: str, workers: int, n: int, log_dir: Path) -> dict:
    from benchmarks.workers import start_worker
    from ops.demo import remove_run_state

    topic = INPUT_OF[agent]
    codec = CodecRegistry(settings.schema_registry_url).for_topic(topic)
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    group = f"{app_id}-{agent}"
    probe = Consumer(settings.kafka_config({"group.id": group, "enable.auto.commit": False, "log_level": 3}))
    probe.commit(offsets=topic_ends(probe, topic), asynchronous=False)
    env = {"ALGO_APP_ID": app_id, "ALGO_OFFSET_RESET": "latest", "BAR_IDLE_CLOSE_S": "3600",
           "QUANT_MODEL_NAMESPACE": settings.model_namespace}  # the model the demo serves
    processes = [start_worker(agent, log_dir / f"scale-{agent}-{workers}-{i}.log", env) for i in range(workers)]
    try:
        time.sleep(3)  # the group settles on its members
        started = time.perf_counter()
        (publish_ticks if topic == "market.ticks" else publish_bars)(settings, codec, n)
        target = total(topic_ends(probe, topic))
        while group_committed(settings, group, topic) < target:
            if any(p.poll() is not None for p in processes):
                raise SystemExit(f"a {agent} worker stopped; see {log_dir}/scale-{agent}-{workers}-*.log")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        probe.close()
        remove_run_state(dataclasses.replace(settings, app_id=app_id))
    return {"agent": agent, "workers": workers, "input": topic, "messages": n, "seconds": round(seconds, 2),
            "messages_per_s": round(n / seconds, 1)}


def counts(text: str, what: str, choices=None) -> list:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if choices is not None:
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise SystemExit(f"--{what}: {', '.join(unknown) or 'none given'}; choose from {', '.join(choices)}")
        return items
    try:
        numbers = [int(item) for item in items]
    except ValueError:
        raise SystemExit(f"--{what}: {text!r} is not a comma-separated list of whole numbers") from None
    if not numbers or min(numbers) < 1:
        raise SystemExit(f"--{what}: give one or more counts of at least 1")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    parser.add_argument("--agents", default=",".join(INPUT_OF))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--ticks", type=int, default=40_000, help="Ticks published for the bar agent.")
    parser.add_argument("--bars", type=int, default=6_000, help="Bars published for the bar-driven agents.")
    args = parser.parse_args()
    agents, worker_counts = counts(args.agents, "agents", INPUT_OF), counts(args.workers, "workers")
    settings = get_settings()
    log_dir = settings.run_dir / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    started, rows = time.monotonic(), []
    if "quant" in agents:  # a quant worker without a model keeps its windows warm and scores nothing
        from ops.demo import ensure_quant_model

        ensure_quant_model(settings, (lambda _: None) if args.json else (lambda s: print(f"scale-out: {s}", flush=True)))
    for agent in agents:
        for workers in worker_counts:
            row = measure(settings, agent, workers, args.ticks if INPUT_OF[agent] == "market.ticks" else args.bars,
                          log_dir)
            rows.append(row)
            if not args.json:
                print(f"scale-out: {agent} x{workers}: {row['messages_per_s']:,.0f} {row['input']} messages/s",
                      flush=True)
    result = {"benchmark": "scale_out", "commit": git_commit(), "topic_partitions": settings.topic_partitions,
              "rows": rows, "seconds": round(time.monotonic() - started, 1)}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result) if args.json else f"written to {RESULTS}")


if __name__ == "__main__":
    main()
