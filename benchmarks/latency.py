"""Tick-to-decision latency through Kafka: ticks -> bars agent -> technical agent -> consensus.

One `algo worker signals` process (bars + technical + consensus) runs with BAR_INTERVAL=1s and the
technical agent as the only voter (the consensus decides every bar once its vote is in). This script publishes ticks with wall-clock
timestamps at a steady rate over several symbols. A bar for second s closes when the first tick of
second s+1 arrives, so a decision about bar s is timed from the publish time of that closing tick
to the moment this script receives the decision. Warm-up bars (the technical agent needs 31 bars
of history; earlier votes are HOLD and still produce decisions) are included; the first 5 seconds
are dropped. Needs the local stack (`algo stack up && algo provision`).

    .venv/bin/python benchmarks/latency.py [--rates 1000 5000] [--seconds 30] [--symbols 10] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.market.bars import from_micros, to_micros  # noqa: E402
from streams.bus.codecs import CodecRegistry  # noqa: E402
from streams.settings import get_settings  # noqa: E402
from benchmarks.workers import start_worker  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "latency.json"


def start_signals_worker(log: Path):
    return start_worker("signals", log, {"ALGO_APP_ID": f"bench-{uuid.uuid4().hex[:8]}", "ALGO_OFFSET_RESET": "latest",
                                         "BAR_INTERVAL": "1s", "BAR_IDLE_CLOSE_S": "3600",
                                         "CONSENSUS_BAR_AGENTS": "technical", "CONSENSUS_WEIGHTS": "technical=1"})


def run(rate: int, seconds: float, n_symbols: int, settings, log_dir: Path) -> dict:
    run_id = uuid.uuid4().hex[:4].upper()
    symbols = [f"B{run_id}{i:02d}" for i in range(n_symbols)]
    codecs = CodecRegistry(settings.schema_registry_url)
    tick_codec, decision_codec = codecs.for_topic("market.ticks"), codecs.for_topic("consensus.decisions")
    worker = start_signals_worker(log_dir / f"latency-{rate}.log")
    consumer = Consumer(settings.kafka_config({"group.id": f"bench-{run_id}", "auto.offset.reset": "latest",
                                               "log_level": 3, "fetch.wait.max.ms": 5}))
    consumer.subscribe(["consensus.decisions"])
    while not consumer.assignment():
        consumer.poll(0.1)
    received: list[tuple[str, int, float]] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time()
            decision = decision_codec.decode(message.value())
            if decision["symbol"] in symbols:
                received.append((decision["symbol"], to_micros(decision["ts"]) // 1_000_000, now))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = Producer(settings.kafka_config({"linger.ms": 1, "partitioner": "murmur2_random", "log_level": 3}))
    closing_tick_sent: dict[tuple[str, int], float] = {}
    last_second: dict[str, int] = {}
    rng = np.random.default_rng(0)
    prices = {s: 100.0 for s in symbols}
    interval = 1.0 / rate
    started = time.time()
    sent, seq = 0, 0
    while time.time() - started < seconds:
        target = started + sent * interval
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        symbol = symbols[sent % n_symbols]
        prices[symbol] *= 1 + 0.001 * rng.standard_normal()
        now = time.time()
        second = int(now)
        tick = {"symbol": symbol, "ts": from_micros(int(now * 1e6)), "price": prices[symbol], "size": 1.0,
                "source": f"bench-{run_id}", "seq": seq}
        producer.produce("market.ticks", key=symbol.encode(), value=tick_codec.encode(tick))
        if last_second.get(symbol) != second:
            if symbol in last_second:  # this tick closes the symbol's bar of the previous second(s)
                closing_tick_sent[(symbol, last_second[symbol])] = now
            last_second[symbol] = second
        producer.poll(0)
        sent += 1
        seq += 1
    producer.flush(30)
    achieved = sent / (time.time() - started)
    time.sleep(5)
    stop.set()
    reader.join()
    consumer.close()
    worker.terminate()
    worker.wait(30)
    latencies = [(received_at - closing_tick_sent[(symbol, second)]) * 1000
                 for symbol, second, received_at in received
                 if (symbol, second) in closing_tick_sent and second >= int(started) + 5]
    values = np.array(latencies) if latencies else np.array([np.nan])
    return {"target_ticks_per_second": rate, "achieved_ticks_per_second": round(achieved, 1), "symbols": n_symbols,
            "seconds": seconds, "decisions_timed": len(latencies),
            "p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2),
            "max_ms": round(float(values.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = get_settings()
    log_dir = settings.run_dir / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = [run(rate, args.seconds, args.symbols, settings, log_dir) for rate in args.rates]
    output = {"benchmark": "tick_to_decision_latency", "goal": "p99 < 50 ms at 1,000 ticks/s", "runs": results}
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    if args.json:
        print(json.dumps(output))
        return
    for r in results:
        print(f"{r['target_ticks_per_second']:>6} ticks/s target ({r['achieved_ticks_per_second']:,.0f} achieved), "
              f"{r['symbols']} symbols, {r['decisions_timed']} decisions: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
              f"max {r['max_ms']} ms")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
