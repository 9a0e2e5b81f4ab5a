"""Websocket fan-out of the bridge: N concurrent clients all receiving every decision.

Starts `algo bridge` (or uses --url), connects --clients websocket clients (loopback only) that all
subscribe to consensus.decisions for one benchmark symbol, then publishes --decisions
ConsensusDecisions to Kafka at a steady --rate, each carrying its publish time (wall clock, ns) in
its rationale. Every client notes the time each decision arrives; delivery latency is
arrival - publish: Kafka produce (acks=all) -> broker -> the bridge's consumer -> Avro decode -> JSON
-> per-client queue -> aiohttp's send_frame (the payload encoded once per event) -> the client's
event loop. Prints p50/p90/p99/max and writes
benchmarks/results/ws_fanout.json (--json prints that one object).

    .venv/bin/python benchmarks/ws_fanout.py                    # 500 clients, 300 decisions at 10/s
    .venv/bin/python benchmarks/ws_fanout.py --rate 50 --decisions 1000 --json

Needs the local stack (`algo stack up && algo provision`). The decisions go to the real
consensus.decisions topic under a symbol of their own (WSB...), with action HOLD and target 0, so a
running risk agent or broker has nothing to trade.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from streams.settings import Settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "ws_fanout.json"
TOPIC = "consensus.decisions"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


class Bridge:
    """`algo bridge` in a subprocess on a free port, or an existing one at --url."""

    def __init__(self, url: str | None, token: str | None, log: Path) -> None:
        self.process = None
        if url:
            self.url, self.token = url.rstrip("/"), token or os.environ.get("ALGO_API_TOKEN", "")
            return
        self.token = token or uuid.uuid4().hex
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "bridge", "--port", str(port)], cwd=ROOT,
                env={**os.environ, "ALGO_API_TOKEN": self.token}, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    async def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise SystemExit(f"the bridge exited; see {self.log}")
                try:
                    async with session.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=10)) as r:
                        body = await r.json()
                        if r.status == 200:
                            return
                        last = json.dumps(body["checks"])
                except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                    last = str(error)
                await asyncio.sleep(0.3)
        raise SystemExit(f"bridge at {self.url} not ready after {timeout:.0f} s ({last}); "
                         "is the stack up? `algo stack up && algo provision`")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Client:
    def __init__(self, index: int, run: str, expected: int) -> None:
        self.index = index
        self.run = run
        self.expected = expected
        self.latencies_ms: list[float] = []
        self.closed_code: int | None = None
        self.done = asyncio.Event()

    async def connect(self, session: aiohttp.ClientSession, url: str, token: str, symbol: str) -> None:
        self.ws = await session.ws_connect(f"{url}/v1/stream?token={token}", compress=0, max_msg_size=0,
                                           autoping=True, timeout=aiohttp.ClientWSTimeout(ws_close=10))
        await self.ws.send_str(json.dumps({"action": "subscribe", "topics": [TOPIC], "symbols": [symbol]}))
        while True:
            message = await self.ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"client {self.index}: socket closed before subscribing: {message}")
            if json.loads(message.data)["type"] == "subscribed":
                return

    async def read(self) -> None:
        marker = f'"decision_id":"{self.run}-'
        async for message in self.ws:
            received_ns = time.time_ns()  # first thing: the arrival time
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            text = message.data
            if marker not in text:
                continue  # control messages, other decisions for the symbol
            start = text.index("t_ns=") + 5
            published_ns = int(text[start:text.index('"', start)])
            self.latencies_ms.append((received_ns - published_ns) / 1e6)
            if len(self.latencies_ms) >= self.expected:
                self.done.set()
        self.closed_code = self.ws.close_code
        self.done.set()


def client_process(conn, index: int, count: int, url: str, token: str, symbol: str, run: str, expected: int,
                   drain_timeout: float) -> None:
    """One of --procs client processes: connect and subscribe `count` clients, say so, then collect."""

    async def main() -> dict:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [Client(index * 100_000 + i, run, expected) for i in range(count)]
            gate = asyncio.Semaphore(50)

            async def connect(client: Client) -> None:
                async with gate:
                    await client.connect(session, url, token, symbol)

            await asyncio.gather(*(connect(c) for c in clients))
            readers = [asyncio.create_task(c.read()) for c in clients]
            conn.send("ready")
            await asyncio.to_thread(conn.recv)  # "go": the publisher starts
            deadline = await asyncio.to_thread(conn.recv)  # seconds left to drain, once publishing is done
            try:
                await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), deadline)
            except asyncio.TimeoutError:
                pass
            for c in clients:
                await c.ws.close()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            return {"latencies": [c.latencies_ms for c in clients]}

    try:
        conn.send(asyncio.run(main()))
    except Exception as error:  # reported to the parent, which fails loudly
        conn.send({"error": f"{type(error).__name__}: {error}"})


def receive(pipe):
    try:
        return pipe.recv()
    except EOFError:
        return {"error": "a client process exited without a word (see its traceback above)"}


def publish(settings: Settings, symbol: str, run: str, count: int, rate: float, stop: threading.Event,
            warmup: int = 0) -> dict:
    """Produces `warmup` unmeasured decisions, then `count` at `rate` per second; returns timing facts."""
    from confluent_kafka import Producer

    from streams.bus.codecs import CodecRegistry

    codec = CodecRegistry(settings.schema_registry_url).for_topic(TOPIC)
    producer = Producer(settings.kafka_config({"acks": "all", "partitioner": "murmur2_random", "linger.ms": 0,
                                               "log_level": 3, "client.id": "ws-fanout-bench"}))
    errors = []
    for i in range(warmup):  # first messages pay for connections and schema lookups everywhere
        producer.produce(TOPIC, key=symbol.encode(), value=codec.encode(
            {"decision_id": f"warmup-{run}-{i}", "symbol": symbol, "ts": datetime.now(timezone.utc), "action": "HOLD",
             "target_position": 0.0, "agreement": 0.0, "votes": [], "rationale": "warm-up"}))
        producer.flush(30)
        time.sleep(0.2)
    start = time.perf_counter()
    lateness = []
    for i in range(count):
        if stop.is_set():
            break
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        lateness.append(max(0.0, time.perf_counter() - due))
        record = {"decision_id": f"{run}-{i}", "symbol": symbol, "ts": datetime.now(timezone.utc), "action": "HOLD",
                  "target_position": 0.0, "agreement": 0.0,
                  "votes": [{"signal_id": f"{run}-s{i}", "agent": "bench", "action": "HOLD", "confidence": 0.5,
                             "weight": 1.0}],
                  "rationale": ""}
        record["rationale"] = f"ws fan-out benchmark t_ns={time.time_ns()}"
        producer.produce(TOPIC, key=symbol.encode(), value=codec.encode(record),
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - start
    return {"published": len(lateness), "seconds": round(elapsed, 3), "errors": [str(e) for e in errors],
            "max_schedule_lateness_ms": round(1000 * max(lateness, default=0.0), 3)}


async def scrape_fanout(session: aiohttp.ClientSession, url: str) -> dict:
    """The bridge's own counters: its fan-out histogram (Kafka read -> websocket write) and drops."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    out = {"buckets": {}, "count": 0.0, "sum": 0.0, "dropped": 0.0}
    for line in text.splitlines():
        value = line.rsplit(" ", 1)[-1]
        if line.startswith("algo_bridge_fanout_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out["buckets"][float("inf") if le == "+Inf" else float(le)] = float(value)
        elif line.startswith("algo_bridge_fanout_latency_seconds_count"):
            out["count"] = float(value)
        elif line.startswith("algo_bridge_fanout_latency_seconds_sum"):
            out["sum"] = float(value)
        elif line.startswith("algo_bridge_websocket_dropped_clients_total"):
            out["dropped"] = float(value)
    return out


def fanout_between(before: dict, after: dict) -> dict:
    count = after["count"] - before["count"]
    buckets = sorted((le, after["buckets"][le] - before["buckets"].get(le, 0.0)) for le in after["buckets"])
    p99 = next((le for le, c in buckets if count and c >= 0.99 * count), None)
    return {"sends": int(count), "mean_ms": round(1000 * (after["sum"] - before["sum"]) / count, 3) if count else None,
            "p99_bucket_upper_bound_ms": None if p99 in (None, float("inf")) else round(1000 * p99, 3),
            "dropped_clients": int(after["dropped"] - before["dropped"])}


async def run(args) -> dict:
    settings = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    symbol = f"WSB{run_id[:5].upper()}"
    bridge = Bridge(args.url, args.token, ROOT / ".run" / "bench" / f"ws_fanout-bridge-{run_id}.log")
    try:
        await bridge.wait_ready()
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        shares = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
        pipes, processes = [], []
        started = time.perf_counter()
        for index, share in enumerate(s for s in shares if s):
            parent, child = context.Pipe()
            process = context.Process(target=client_process, daemon=True, args=(
                child, index, share, bridge.url, bridge.token, symbol, run_id, args.decisions, args.drain_timeout))
            process.start()
            pipes.append(parent)
            processes.append(process)
        for pipe in pipes:
            message = await asyncio.to_thread(receive, pipe)
            if message != "ready":
                raise SystemExit(f"a client process failed: {message}")
        connect_s = time.perf_counter() - started
        if not args.json:
            print(f"ws_fanout: {args.clients} clients in {len(processes)} process(es) connected and subscribed in "
                  f"{connect_s:.2f} s; publishing {args.decisions} decisions at {args.rate:g}/s", flush=True)
        async with aiohttp.ClientSession() as session:
            stop = threading.Event()
            if args.warmup:
                await asyncio.to_thread(publish, settings, symbol, run_id, 0, args.rate, stop, args.warmup)
                await asyncio.sleep(0.5)
            before = await scrape_fanout(session, bridge.url)
            for pipe in pipes:
                pipe.send("go")
            published = await asyncio.to_thread(publish, settings, symbol, run_id, args.decisions, args.rate, stop)
            for pipe in pipes:
                pipe.send(args.drain_timeout)
            results = [await asyncio.to_thread(receive, pipe) for pipe in pipes]
            after = await scrape_fanout(session, bridge.url)
        for process in processes:
            process.join(30)
        failed = [r["error"] for r in results if "error" in r]
        if failed:
            raise SystemExit(f"a client process failed: {failed[0]}")
        per_client = [latencies for r in results for latencies in r["latencies"]]
    finally:
        bridge.stop()

    latencies = sorted(x for client in per_client for x in client)
    expected = args.clients * published["published"]
    complete = sum(1 for client in per_client if len(client) >= published["published"])
    fanout = fanout_between(before, after)
    result = {
        "benchmark": "ws_fanout",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},  # a shared machine's noise
        "clients": args.clients, "client_processes": args.procs, "decisions": published["published"],
        "rate_per_s": args.rate, "warmup": args.warmup,
        "connect_seconds": round(connect_s, 3),
        "deliveries": len(latencies), "expected_deliveries": expected,
        "clients_with_every_decision": complete,
        "dropped_clients": fanout.pop("dropped_clients"),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2), "p90": round(percentile(latencies, 90), 2),
            "p99": round(percentile(latencies, 99), 2), "p99.9": round(percentile(latencies, 99.9), 2),
            "max": round(latencies[-1], 2) if latencies else None,
            "mean": round(statistics.fmean(latencies), 2) if latencies else None,
        },
        "goal": {"p99_ms_below": 100.0, "met": bool(latencies) and percentile(latencies, 99) < 100.0
                 and len(latencies) == expected},
        "bridge_fanout": fanout,
        "publisher": published,
        "what": "publish (wall clock, in the message) -> Kafka (acks=all) -> bridge consumer -> Avro decode -> "
                "JSON -> websocket -> client receive; all on loopback; clients spread over client_processes",
        "command": "python benchmarks/ws_fanout.py " + " ".join(sys.argv[1:]),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="decisions per second")
    parser.add_argument("--procs", type=int, default=2, help="client processes the clients are spread over")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured decisions sent first")
    parser.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to wait for the last deliveries")
    parser.add_argument("--url", default=None, help="use a running bridge instead of starting one")
    parser.add_argument("--token", default=None, help="its token (default ALGO_API_TOKEN)")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the JSON result ('' for nowhere)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.clients < 1 or args.decisions < 1 or args.rate <= 0 or args.procs < 1:
        parser.error("--clients, --decisions, --rate and --procs must be positive")
    result = asyncio.run(run(args))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    lat = result["latency_ms"]
    print(f"ws_fanout: {result['deliveries']}/{result['expected_deliveries']} deliveries to {result['clients']} clients "
          f"({result['clients_with_every_decision']} got every decision, {result['dropped_clients']} dropped)")
    print(f"  latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  p99.9 {lat['p99.9']}  max {lat['max']}"
          f"  (goal p99 < 100 ms: {'met' if result['goal']['met'] else 'NOT met'})")
    print(f"  bridge fan-out (Kafka read -> send done): mean {result['bridge_fanout']['mean_ms']} ms, "
          f"p99 <= {result['bridge_fanout']['p99_bucket_upper_bound_ms']} ms")
    if args.out:
        print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
