"""`algo demo`: the whole pipeline on bundled data, ending with a summary of what landed in Postgres.

Steps: stack up -> provision -> a Quant model (the registered one, else a quick PPO training, see
DEMO_QUANT) -> the demo news corpus embedded into pgvector (`algo analyst backfill`, idempotent) -> start
the workers (bars, persistence, technical, quant, analyst, consensus, risk, broker) -> replay the dataset
and the news corpus interleaved in event time -> wait until every source bar is in market_data and the trading loop
(votes -> decisions -> verdicts -> orders -> fills) has gone quiet -> ask the Risk agent, over
Kafka, for an SMA-crossover backtest of each symbol on the bars that landed -> summary -> stop the
workers. Each run trades a fresh paper account (demo-<time>). The stack stays up (`algo stack down`).

Ctrl-C (SIGINT) and SIGTERM stop the demo at any step: the workers and the bridge it started get
SIGTERM (SIGKILL after STOP_TIMEOUT_S), so they leave their consumer groups and the next demo can
reset them. The demo installs its own handlers because neither default is enough: a shell starts
a background job with SIGINT ignored (Python then keeps ignoring it), and SIGTERM's default ends
the process without running the `finally` that stops the workers (in sessions of their own, so a
terminal's Ctrl-C does not reach them directly).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from streams.errors import AlgoError
from streams.settings import Settings

DEMO_WORKERS = ("bars", "persistence", "technical", "quant", "analyst", "consensus", "risk", "broker", "memory")
# Redis is capped for the demo at its used memory at the start + this, so the demo's hot set (the bridge's
# bar/decision reads and the risk agent's backtest results: a few MiB) does not fit and the Memory agent
# has to tier; the previous maxmemory and policy come back at the end.
DEMO_REDIS_HEADROOM_BYTES = 1024 * 1024
# The demo's memory workload (after the trading loop settles): WORKLOAD_REQUESTS reads, Zipf(WORKLOAD_ZIPF)
# over what the dashboard and a strategy researcher read: the bridge's recent bars of each symbol at
# several depths, its decisions, the book, and SMA backtests over a grid of windows (a repeat is a hit).
WORKLOAD_REQUESTS = 600
WORKLOAD_ZIPF = 1.1
WORKLOAD_RATE = 40.0  # requests per second
WORKLOAD_BAR_LIMITS = (100, 250, 500, 1000, 2000, 4000)
WORKLOAD_SMA = tuple((fast, slow) for fast in (5, 10, 20, 30) for slow in (50, 100, 150, 200))
# The demo's Quant policy when none is registered: PPO on S&P 500 index bars from 2014 on, i.e.
# after the bundled stocks' 2000-2013 and never on the replayed symbols themselves.
DEMO_QUANT = {"dataset": "sp500", "start": "2014-01-01", "timesteps": 30_000, "seed": 0}
STOP_TIMEOUT_S = 10.0  # a worker's clean shutdown (leave the group, commit) takes a few seconds
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DemoStopped(BaseException):
    """SIGINT or SIGTERM reached the demo. A BaseException, like KeyboardInterrupt, so no
    `except Exception` on the way swallows it; the `finally` blocks stop what was started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stopped_by_signals():
    """SIGINT and SIGTERM raise DemoStopped in the main thread while the demo runs, whatever
    dispositions it inherited; the previous handlers come back after."""
    def stop(signum, _frame):
        raise DemoStopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred():
    """While the workers are being stopped, a second Ctrl-C must not cut the cleanup short: signals
    are noted and DemoStopped is raised once the block is done."""
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, _frame: received.append(signum))
                for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise DemoStopped(received[0])


def start_workers(settings: Settings, names=DEMO_WORKERS, env: dict | None = None) -> list[subprocess.Popen]:
    log_dir = settings.run_dir / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        for name in names:
            log = open(log_dir / f"{name}.log", "wb")  # one run per log, so readiness is this run's
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "worker", name], stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, start_new_session=True,
            ))
    except BaseException:  # stopped half way: the ones already started are ours to stop
        with signals_deferred():
            stop_workers(processes, STOP_TIMEOUT_S)
        raise
    return processes


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_bridge(settings: Settings, token: str, timeout: float = 60,
                 env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`algo bridge` in its own process; returns it and the dashboard URL once /healthz answers."""
    import urllib.request

    log_dir = settings.run_dir / "workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "bridge.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "ops.cli", "bridge"], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {}), "ALGO_API_TOKEN": token}, start_new_session=True)
    base = f"http://{settings.bridge_host}:{settings.bridge_port}"
    def healthy() -> bool:
        if process.poll() is not None:
            raise AlgoError(f"the bridge exited while starting; see {log_dir / 'bridge.log'}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        try:
            Retrying(retry=retry_if_result(lambda ok: not ok), stop=stop_after_delay(timeout), wait=wait_fixed(0.3))(healthy)
        except RetryError:
            raise AlgoError(f"the bridge did not answer /healthz in {timeout:.0f} s; see {log_dir / 'bridge.log'}") from None
        return process, f"{base}/?token={token}"
    except BaseException:  # did not start, or the demo was stopped while it started
        with signals_deferred():
            stop_workers([process], STOP_TIMEOUT_S)
        raise


def wait_ready(settings: Settings, processes: list[subprocess.Popen], names=DEMO_WORKERS, timeout: float = 300) -> None:
    """Waits until every worker has joined its group and recovered its tables (a stack that has run
    many demos has long changelogs until the log cleaner has compacted them)."""
    logs = [settings.run_dir / "workers" / f"{name}.log" for name in names]
    deadline = time.monotonic() + timeout
    pending = set(logs)
    while pending:
        for log in list(pending):
            if b"[^Worker]: Ready" in log.read_bytes():
                pending.discard(log)
        dead = [p for p in processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise AlgoError(f"worker(s) not ready: {', '.join(l.name for l in pending)}; see {settings.run_dir / 'workers'}")
        time.sleep(0.25)


def stop_workers(processes: list[subprocess.Popen], timeout: float = STOP_TIMEOUT_S) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _count_since(conn: psycopg.Connection, since: datetime, interval: str, symbols: list[str]) -> int:
    return conn.execute(
        "SELECT count(*) FROM market_data WHERE updated_at >= %s AND interval = %s AND symbol = ANY(%s)",
        (since, interval, symbols),
    ).fetchone()[0]


def wait_for_bars(settings: Settings, since: datetime, expected: int, symbols: list[str],
                  workers: list[subprocess.Popen], timeout: float = 300) -> tuple[int, float]:
    """Polls market_data until `expected` bars were written since `since`; returns (count, time of last)."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        while True:
            count = _count_since(conn, since, settings.bar_interval, symbols)
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            if count >= expected:
                return count, last_change
            dead = [w for w in workers if w.poll() is not None]
            if dead:
                raise AlgoError(f"a worker exited (status {dead[0].returncode}); see {settings.run_dir / 'workers'}")
            if time.monotonic() > deadline:
                raise AlgoError(f"only {count} of {expected} bars reached Postgres in {timeout:.0f} s; "
                                f"see the worker logs in {settings.run_dir / 'workers'}")
            time.sleep(0.25)


def request_backtests(settings: Settings, symbols: list[str], timeout: float = 120,
                      params: list[dict] | None = None) -> dict[str, dict]:
    """One BacktestRequest per symbol on backtest.requests (SMA windows `params[i]` for symbols[i],
    default 20/100); the BacktestResults, by symbol (by request index when `params` is given)."""
    import uuid

    from confluent_kafka import Consumer, Producer

    from streams.bus.codecs import CodecRegistry

    codecs = CodecRegistry(settings.schema_registry_url)
    consumer = Consumer(settings.kafka_config({"group.id": f"algo-demo-{uuid.uuid4().hex[:8]}",
                                               "auto.offset.reset": "latest", "log_level": 3}))
    consumer.subscribe(["backtest.results"])
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    producer = Producer(settings.kafka_config({"partitioner": "murmur2_random", "log_level": 3}))
    wanted = {}
    for index, symbol in enumerate(symbols):
        windows = params[index] if params is not None else {"fast": 20.0, "slow": 100.0}
        request = {"request_id": str(uuid.uuid4()), "ts": datetime.now(timezone.utc), "symbol": symbol,
                   "strategy": "sma", "params": windows, "fee_bps": 1.0,
                   "slippage_bps": 1.0, "initial_cash": 100_000.0, "start": None, "end": None}
        wanted[request["request_id"]] = symbol if params is None else index
        producer.produce("backtest.requests", key=request["request_id"].encode(),
                         value=codecs.for_topic("backtest.requests").encode(request))
    producer.flush(15)
    results: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < len(wanted) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            result = codecs.for_topic("backtest.results").decode(message.value())
            if result["request_id"] in wanted:
                results[wanted[result["request_id"]]] = result
    finally:
        consumer.close()
    if len(results) < len(wanted):
        raise AlgoError(f"the risk agent answered {len(results)} of {len(wanted)} backtest requests in {timeout:.0f} s; "
                        f"see {settings.run_dir / 'workers' / 'risk.log'}")
    return results


def topic_size(settings: Settings, topic: str) -> int:
    """Messages ever written to a topic: the sum of its partitions' high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.kafka_config({"group.id": "algo-demo-watermarks", "log_level": 3}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def demo_groups(settings: Settings, names=DEMO_WORKERS) -> list[str]:
    """The demo workers' consumer groups (Faust's group id is the app id, `<ALGO_APP_ID>-<worker>`)."""
    return [f"{settings.app_id}-{name}" for name in names]


# the inputs the event-time barriers wait on (streams.bus.progress), by the agent module that reads them
BARRIER_INPUTS = {"streams.market.agents": "market.ticks", "streams.analyst.agents": "news.items",
                  "streams.consensus.agents": "agent.signals", "streams.risk.agents": "market.bars"}
RUN_TOPICS = ("consensus.decisions", "risk.verdicts", "orders", "fills")


def run_environment(settings: Settings, account: str) -> dict[str, str]:
    """A run's own app id (fresh consumer groups and tables, so nothing of an earlier run is carried
    over) with the shared model namespace, and its paper account."""
    return {"ALGO_APP_ID": f"{settings.app_id}-{account}", "QUANT_MODEL_NAMESPACE": settings.model_namespace,
            "RISK_ACCOUNT": account, "ALGO_OFFSET_RESET": "latest"}


def start_from_the_end(settings: Settings, names=DEMO_WORKERS) -> None:
    """Commits, for each worker's consumer group, the end offsets of the inputs its barriers wait on,
    so (with ALGO_OFFSET_RESET=latest for the rest) the run reads only what it publishes, and the
    barriers know where every group stands from its first message on."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    from streams.workers import WORKERS

    probe = Consumer(settings.kafka_config({"group.id": f"{settings.app_id}-probe", "log_level": 3}))
    try:
        ends = {}
        for topic in set(BARRIER_INPUTS.values()):
            partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
            ends[topic] = [TopicPartition(topic, p, probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
                           for p in partitions]
    finally:
        probe.close()
    for name in names:
        topics = {BARRIER_INPUTS[m] for m in WORKERS.get(name, ()) if m in BARRIER_INPUTS}
        if not topics:
            continue
        consumer = Consumer(settings.kafka_config({"group.id": f"{settings.app_id}-{name}", "log_level": 3,
                                                   "enable.auto.commit": False}))
        try:
            consumer.commit(offsets=[tp for topic in sorted(topics) for tp in ends[topic]], asynchronous=False)
        except KafkaException as error:
            raise AlgoError(f"cannot set the start of consumer group {settings.app_id}-{name} ({error}); "
                            "is another demo or worker running under this app id?") from None
        finally:
            consumer.close()


def topic_ends(settings: Settings, topics=RUN_TOPICS) -> dict[str, dict[int, int]]:
    from streams.bus.progress import StreamProgress

    progress = StreamProgress(settings)
    return {topic: progress.end_offsets(topic) for topic in topics}


def run_records(settings: Settings, starts: dict[str, dict[int, int]], account: str) -> dict[str, list[dict]]:
    """What the run published after `starts` (topic_ends before it): its decisions and verdicts, and
    the orders and fills of its account, decoded."""
    from confluent_kafka import Consumer, TopicPartition

    from streams.bus.codecs import CodecRegistry

    codecs = CodecRegistry(settings.schema_registry_url)
    ends = topic_ends(settings, tuple(starts))
    consumer = Consumer(settings.kafka_config({"group.id": f"{settings.app_id}-records", "log_level": 3,
                                               "enable.auto.commit": False}))
    records: dict[str, list[dict]] = {topic: [] for topic in starts}
    try:
        for topic, start in starts.items():
            remaining = {p: ends[topic][p] for p in start if ends[topic][p] > start[p]}
            if not remaining:
                continue
            consumer.assign([TopicPartition(topic, p, start[p]) for p in remaining])
            codec = codecs.for_topic(topic)
            deadline = time.monotonic() + 120
            while remaining and time.monotonic() < deadline:
                for message in consumer.consume(1000, timeout=1.0):
                    if message.error():
                        continue
                    if message.offset() + 1 >= remaining.get(message.partition(), 0):
                        remaining.pop(message.partition(), None)
                    record = codec.decode(message.value())
                    if "account" not in record or record["account"] == account:
                        records[topic].append(record)
            if remaining:
                raise AlgoError(f"could not read {topic} to its end in 120 s")
    finally:
        consumer.close()
    return records


def run_book(settings: Settings, account: str) -> dict | None:
    """The account's persisted book, shaped as streams.broker.book keeps it (for the digest)."""
    with psycopg.connect(settings.database_url) as conn:
        account_row = conn.execute("SELECT cash, realised_pnl, fees FROM accounts WHERE account = %s",
                                   (account,)).fetchone()
        positions = conn.execute("SELECT symbol, quantity, avg_price FROM positions WHERE account = %s",
                                 (account,)).fetchall()
    if account_row is None:
        return None
    return {"cash": float(account_row[0]), "realised_pnl": float(account_row[1]), "fees": float(account_row[2]),
            "positions": {s: {"quantity": float(q), "avg_price": float(a)} for s, q, a in positions}}


def run_digest(settings: Settings, starts: dict[str, dict[int, int]], account: str) -> dict:
    from streams.bus.digest import trading_digest

    records = run_records(settings, starts, account)
    return trading_digest(records["consensus.decisions"], records["risk.verdicts"], records["orders"],
                          records["fills"], run_book(settings, account))


def remove_run_state(settings: Settings) -> None:
    """Deletes the run's consumer groups and its workers' changelog topics (`<app id>-...`)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_config({"log_level": 3}))
    prefix = f"{settings.app_id}-"
    try:
        groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=10).result(timeout=15).valid
                  if g.group_id.startswith(prefix)]
        for future in (admin.delete_consumer_groups(groups, request_timeout=15).values() if groups else ()):
            with contextlib.suppress(Exception):
                future.result(timeout=20)
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for future in (admin.delete_topics(topics, operation_timeout=30).values() if topics else ()):
            with contextlib.suppress(Exception):
                future.result(timeout=40)
    except Exception as error:  # noqa: BLE001 - leftovers are harmless; say so and go on
        print(f"demo: could not remove the run's groups and changelogs ({error})", file=sys.stderr, flush=True)


def group_lags(settings: Settings, groups: list[str]) -> dict[str, int]:
    """Messages each group has not committed yet, over the partitions it has committed offsets for."""
    from streams.bus.liveness import GroupOffsetsReader

    return {group: offsets.lag for group, offsets in GroupOffsetsReader(settings).read(groups).items()}


def groups_lag(settings: Settings, groups: list[str]) -> int:
    return sum(group_lags(settings, groups).values())


def wait_drained(settings: Settings, workers: list[subprocess.Popen], timeout: float = 600) -> float:
    """Seconds until every demo worker has committed all it was sent (polled every 0.25 s)."""
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while groups_lag(settings, demo_groups(settings)) > 0:
        if any(w.poll() is not None for w in workers):
            raise AlgoError(f"a worker exited; see {settings.run_dir / 'workers'}")
        if time.monotonic() > deadline:
            raise AlgoError(f"the workers' lag did not drain in {timeout:.0f} s; see {settings.run_dir / 'workers'}")
        time.sleep(0.25)
    return time.monotonic() - started


def wait_quiet(settings: Settings, account: str, workers: list[subprocess.Popen], quiet_s: float = 5,
               timeout: float = 300) -> None:
    """Waits until decisions, verdicts and the account's fills stop changing for `quiet_s` seconds
    and every demo worker has committed all it consumed (so the vault holds it all)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            now = (topic_size(settings, "consensus.decisions"), topic_size(settings, "risk.verdicts"),
                   conn.execute("SELECT count(*) FROM fills WHERE account = %s", (account,)).fetchone()[0])
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s and groups_lag(settings, demo_groups(settings)) == 0:
                return
            if any(w.poll() is not None for w in workers):
                raise AlgoError(f"a worker exited; see {settings.run_dir / 'workers'}")
            time.sleep(0.5)


def trading_rows(settings: Settings, account: str) -> tuple[dict, dict[str, dict]]:
    """The account's book and, per symbol, orders, fills and PnL (realised + unrealised, after fees)."""
    with psycopg.connect(settings.database_url) as conn:
        book = conn.execute("SELECT cash, equity, realised_pnl, unrealised_pnl, fees, gross_exposure FROM accounts "
                            "WHERE account = %s", (account,)).fetchone()
        rows = conn.execute(
            """SELECT f.symbol, count(*), count(DISTINCT f.order_id),
                      sum(CASE WHEN f.side = 'SELL' THEN f.quantity * f.price ELSE -f.quantity * f.price END) - sum(f.fee),
                      coalesce(max(p.quantity), 0), coalesce(max(p.last_price), 0)
               FROM fills f LEFT JOIN positions p ON p.account = f.account AND p.symbol = f.symbol
               WHERE f.account = %s GROUP BY f.symbol""", (account,)).fetchall()
    per_symbol = {r[0]: {"fills": r[1], "orders": r[2], "position": float(r[4]),
                         "pnl": float(r[3]) + float(r[4]) * float(r[5])} for r in rows}
    names = ("cash", "equity", "realised_pnl", "unrealised_pnl", "fees", "gross_exposure")
    return ({k: float(v) for k, v in zip(names, book)} if book else {}), per_symbol


def summary_rows(settings: Settings, symbols: list[str]) -> list[dict]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            """SELECT symbol, count(*), min(ts), max(ts),
                      (array_agg(close ORDER BY ts DESC))[1], sum(volume)
               FROM market_data WHERE interval = %s AND symbol = ANY(%s) GROUP BY symbol ORDER BY symbol""",
            (settings.bar_interval, symbols),
        ).fetchall()
    return [{"symbol": r[0], "bars": r[1], "first": r[2].date().isoformat(), "last": r[3].date().isoformat(),
             "last_close": float(r[4]), "volume": float(r[5])} for r in rows]


@contextlib.contextmanager
def redis_capped(settings: Settings, say):
    """Redis at maxmemory = its used memory now + DEMO_REDIS_HEADROOM_BYTES, noeviction (only the Memory
    agent evicts), for the block; the previous maxmemory and policy are restored after, however it ends."""
    import redis

    client = redis.Redis.from_url(settings.redis_client_url, socket_timeout=10)
    try:
        before = client.config_get("maxmemory*")
        used = int(client.info("memory")["used_memory"])
        cap = used + DEMO_REDIS_HEADROOM_BYTES
        client.config_set("maxmemory", cap)
        client.config_set("maxmemory-policy", "noeviction")
    except redis.RedisError as error:
        client.close()
        raise AlgoError(f"cannot cap Redis at {settings.redis_url} for the demo ({error}); is it the stack's Redis "
                        "(CONFIG allowed)?") from None
    say(f"Redis capped at {cap / 2**20:.1f} MiB (used {used / 2**20:.1f} MiB + {DEMO_REDIS_HEADROOM_BYTES / 2**20:.0f} "
        f"MiB), noeviction: the Memory agent tiers what does not fit")
    try:
        yield cap
    finally:
        try:
            client.config_set("maxmemory", before.get("maxmemory", "0"))
            client.config_set("maxmemory-policy", before.get("maxmemory-policy", "noeviction"))
        except redis.RedisError as error:  # the demo's summary still comes; say what is left to do
            print(f"demo: could not restore Redis's maxmemory {before.get('maxmemory')} ({error}): "
                  f"`redis-cli config set maxmemory {before.get('maxmemory')}`", file=sys.stderr, flush=True)
        finally:
            client.close()


def memory_workload(settings: Settings, base_url: str, token: str, symbols: list[str], say,
                    requests: int = WORKLOAD_REQUESTS, seed: int = 0) -> dict[str, int]:
    """Reads through the store as the dashboard and a researcher would: bridge GETs and backtest
    requests, WORKLOAD_REQUESTS of them drawn Zipf(WORKLOAD_ZIPF) from a fixed catalogue at
    WORKLOAD_RATE per second (open loop in one thread: backtests are sent in batches of what came up).
    Real reads of real data, no cache entries written by hand."""
    import urllib.request

    import numpy as np

    catalogue: list[tuple[str, object]] = []
    for symbol in symbols:
        catalogue += [("bridge", f"/v1/bars?symbol={symbol}&limit={limit}") for limit in WORKLOAD_BAR_LIMITS]
        catalogue.append(("bridge", f"/v1/decisions?symbol={symbol}&limit=50"))
        catalogue += [("backtest", (symbol, {"fast": float(f), "slow": float(w)})) for f, w in WORKLOAD_SMA]
    catalogue += [("bridge", "/v1/positions"), ("bridge", "/v1/pnl")]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(catalogue))  # which entry is popular: random, not the catalogue's order
    weights = 1.0 / np.arange(1, len(catalogue) + 1) ** WORKLOAD_ZIPF
    draws = order[rng.choice(len(catalogue), size=requests, p=weights / weights.sum())]
    say(f"memory workload: {requests} reads (bridge bars/decisions/book, SMA backtests) over {len(catalogue)} "
        f"distinct ones, Zipf {WORKLOAD_ZIPF}, {WORKLOAD_RATE:g}/s")
    counts = {"bridge": 0, "backtest": 0, "errors": 0}
    pending: list[tuple[str, dict]] = []
    started = time.monotonic()
    for n, index in enumerate(draws.tolist()):
        kind, what = catalogue[index]
        delay = started + n / WORKLOAD_RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if kind == "backtest":
            pending.append(what)
            if len(pending) < 10 and n < requests - 1:
                continue
            try:
                request_backtests(settings, [p[0] for p in pending], params=[p[1] for p in pending], timeout=60)
                counts["backtest"] += len(pending)
            except AlgoError as error:
                counts["errors"] += len(pending)
                say(f"memory workload: {error}")
            pending = []
            continue
        request = urllib.request.Request(base_url + what, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
            counts["bridge"] += 1
        except OSError:
            counts["errors"] += 1
    return counts


def memory_figures(metrics_port: int) -> dict:
    """The Memory worker's own counters, read from its Prometheus endpoint."""
    import urllib.request

    names = {"algo_memory_hit_ratio": "hit_ratio", "algo_memory_demotions_total": "demotions",
             "algo_memory_drops_total": "drops", "algo_memory_rounds_total": "rounds",
             "algo_memory_redis_used_bytes": "redis_used_bytes", "algo_memory_redis_max_bytes": "redis_max_bytes"}
    figures: dict = {"reads": {}}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as error:
        return {"error": f"the memory worker's metrics did not answer ({error})"}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name in names:
            figures[names[name]] = float(value)
        elif name.startswith('algo_memory_accesses_total{op="GET"'):
            tier = name.split('tier="')[1].split('"')[0]
            figures["reads"][tier] = int(float(value))
    return figures


def record_demo_trace(settings: Settings, since: datetime, say) -> dict:
    """The demo's access trace (cache.access since the demo began) as a trace CSV in the run dir."""
    from streams.memory.record import record_trace

    out = settings.run_dir / f"memory-trace-{since:%Y%m%d-%H%M%S}.csv"
    try:
        summary = record_trace(settings, out, since=since, idle_timeout_s=3.0)
    except AlgoError as error:
        say(f"access trace not recorded: {error}")
        return {"path": None, "error": str(error)}
    say(f"access trace: {summary.requests} accesses of {summary.distinct} keys -> {out}")
    return {"path": str(out), "requests": summary.requests, "distinct_keys": summary.distinct}


def ensure_quant_model(settings: Settings, say) -> str:
    """The registered Quant version the demo will serve; trains and registers DEMO_QUANT if none."""
    import numpy as np

    from streams.quant import model as quant_model
    from streams.market.datasets import BarSeries, load_dataset
    from streams.quant.train import train_and_register

    current = quant_model.current_version(settings)
    if current:
        say(f"quant agent will serve model {current} (the latest registered; `algo quant versions`)")
        return current
    say(f"no quant model registered: training PPO on {DEMO_QUANT['dataset']} bars from {DEMO_QUANT['start']} "
        f"({DEMO_QUANT['timesteps']:,} steps)")
    [full] = load_dataset(DEMO_QUANT["dataset"])
    keep = full.dates >= np.datetime64(DEMO_QUANT["start"])
    bars = BarSeries(full.symbol, full.dates[keep], full.open[keep], full.high[keep], full.low[keep], full.close[keep],
                     full.volume[keep])
    summary = train_and_register(settings, [bars], f"dataset:{DEMO_QUANT['dataset']}",
                                 timesteps=DEMO_QUANT["timesteps"], seed=DEMO_QUANT["seed"])
    say(f"quant model {summary['version']} trained and registered")
    return summary["version"]


def signal_counts(settings: Settings, series) -> dict[str, int]:
    """Votes per agent on the replayed bars (their symbols, from the first bar to the end of the last).
    Signal ids derive from the bar and the agent, so a rerun's votes are the same rows: counting the
    replayed span, not new rows, gives this run's votes."""
    start = min(s.dates[0] for s in series).astype("datetime64[us]").item().replace(tzinfo=timezone.utc)
    end = max(s.dates[-1] for s in series).astype("datetime64[us]").item().replace(tzinfo=timezone.utc)
    end += timedelta(seconds=settings.bar_interval_seconds)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT agent, count(*) FROM signals WHERE symbol = ANY(%s) AND ts >= %s AND ts <= %s "
                            "GROUP BY agent", ([s.symbol for s in series], start, end)).fetchall()
    return {agent: count for agent, count in rows}


def run_demo(settings: Settings, dataset: str, symbols: list[str], quiet: bool = False,
             duration: float | None = None, speed: float = 0.0, news_path: str | None = None) -> dict:
    """The demo (see the module's doc). Stopped by SIGINT or SIGTERM: the workers and the bridge are
    stopped, one line says so on stderr, and SystemExit carries 128 + the signal's number."""
    with stopped_by_signals():
        try:
            return _run_demo(settings, dataset, symbols, quiet, duration, speed, news_path)
        except DemoStopped as stopped:
            print(f"demo: stopped by {stopped}; the workers and the bridge it started are stopped, the stack stays up",
                  file=sys.stderr, flush=True)
            raise SystemExit(128 + stopped.signum) from None


def _run_demo(settings: Settings, dataset: str, symbols: list[str], quiet: bool, duration: float | None,
              speed: float, news_path: str | None = None) -> dict:
    from ops.stack import services as stack
    from ops.provision import provision
    from streams.market.datasets import load_dataset
    from streams.analyst.memory import backfill, connect
    from streams.analyst.resources import demo_corpus
    from streams.analyst.service import with_resolved_symbols
    from streams.market.news import load_news
    from streams.market.replay import replay

    say = (lambda _: None) if quiet else (lambda s: print(f"demo: {s}", flush=True))
    series = load_dataset(dataset, symbols)
    names = [s.symbol for s in series]
    news = load_news(news_path or demo_corpus())
    started = time.perf_counter()
    stack.up(settings, progress=say)
    stack_seconds = time.perf_counter() - started
    provision(settings, progress=say)
    quant_version = ensure_quant_model(settings, say)
    # the news archive the Analyst retrieves from, as of each item's time (never later items): embedding it
    # up front makes each vote independent of the order in which the replayed items reach the analyst
    conn = connect(settings.database_url)
    try:
        memory = backfill(conn, with_resolved_symbols(news), progress=False)
    finally:
        conn.close()
    say(f"news memory: {len(news)} items of {news_path or 'the demo corpus'} in pgvector "
        f"({memory.embedded} embedded now, {memory.skipped} already there)")
    account = f"demo-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    run_env = run_environment(settings, account)
    run = Settings.from_env({**os.environ, **run_env})  # the run's app id names its groups and tables
    starts = topic_ends(settings)
    say(f"starting workers {', '.join(DEMO_WORKERS)} for paper account {account} under app id {run.app_id} "
        f"(logs in {settings.run_dir / 'workers'})")
    demo_since = datetime.now(timezone.utc)
    metrics_port = _free_port()
    capped = contextlib.ExitStack()
    redis_cap = capped.enter_context(redis_capped(settings, say))
    try:
        start_from_the_end(run)
        workers = start_workers(settings, env={**run_env, "MEMORY_METRICS_PORT": str(metrics_port)})
        try:
            import secrets

            token = settings.api_token or secrets.token_urlsafe(16)
            bridge, dashboard_url = start_bridge(settings, token, env=run_env)
            workers.append(bridge)
            say(f"dashboard: {dashboard_url}")
            wait_ready(settings, workers[:-1])
            since = datetime.now(timezone.utc)
            say(f"replaying {dataset}: {', '.join(names)}, with {len(news)} news items in event time")
            replay_started = time.monotonic()
            report = replay(settings, series, f"replay:{dataset}", speed=speed, show_progress=not quiet, news=news)
            lag_at_end = {group.removeprefix(f"{run.app_id}-"): lag
                          for group, lag in group_lags(run, demo_groups(run)).items()}
            say(f"replay done: {report.ticks:,} ticks in {report.seconds:.1f} s; lag then: "
                + ", ".join(f"{name} {lag:,}" for name, lag in lag_at_end.items()))
            drain_seconds = wait_drained(run, workers[:-1])
            say(f"every worker's lag drained {drain_seconds:.1f} s after the replay ended")
            expected = sum(len(s) for s in series) if settings.bar_interval_seconds == 86400 else 1
            say(f"waiting for {expected} bars in Postgres")
            persisted, last_write = wait_for_bars(settings, since, expected, names, workers)
            pipeline_seconds = last_write - replay_started
            say("waiting for the trading loop to settle (decisions, verdicts, orders, fills)")
            wait_quiet(run, account, workers)
            loop_seconds = time.monotonic() - replay_started
            digest = run_digest(settings, starts, account)
            say(f"run digest {digest['digest']}: {digest['decisions']:,} decisions, {digest['verdicts']:,} verdicts, "
                f"{digest['orders']:,} orders, {digest['fills']:,} fills (the same on every run and at every speed)")
            say("asking the risk agent for an SMA(20/100) backtest of each symbol over Kafka")
            backtests = request_backtests(settings, names)
            workload = memory_workload(settings, f"http://{settings.bridge_host}:{settings.bridge_port}", token, names,
                                       say)
            time.sleep(max(2.0, 3 * settings.memory.check_interval_s))  # the agent's last rounds
            memory = {**memory_figures(metrics_port), "workload": workload, "cap_bytes": redis_cap}
            if duration is not None and time.perf_counter() - started < duration:
                say(f"keeping everything running until {duration:.0f} s have passed")
                time.sleep(duration - (time.perf_counter() - started))
        finally:
            with signals_deferred():
                stop_workers(workers)
    finally:
        capped.close()
        remove_run_state(run)
    memory["trace"] = record_demo_trace(settings, demo_since, say)
    book, trading = trading_rows(settings, account)
    per_symbol = summary_rows(settings, names)
    for row in per_symbol:
        result = backtests[row["symbol"]]
        row["backtest"] = {"error": result["error"], "bars": result["bars"], "engine_us": result["elapsed_us"],
                           **{k: result["stats"].get(k) for k in ("total_return", "sharpe", "max_drawdown", "trades")}}
        row["paper"] = trading.get(row["symbol"], {"fills": 0, "orders": 0, "position": 0.0, "pnl": 0.0})
    with psycopg.connect(settings.database_url) as conn:
        duplicates = conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM market_data GROUP BY symbol, interval, ts HAVING count(*) > 1) d"
        ).fetchone()[0]
    return {
        "dataset": dataset,
        "symbols": names,
        "stack_up_seconds": round(stack_seconds, 2),
        "ticks_published": report.ticks,
        "news_published": report.news,
        "replay_seconds": round(report.seconds, 3),
        "ticks_per_second": round(report.ticks_per_second, 1),
        "lag_at_replay_end": lag_at_end,
        "drain_seconds": round(drain_seconds, 2),
        "sustained_ticks_per_second": round(report.ticks / (report.seconds + drain_seconds), 1),
        "bars_persisted": persisted,
        "pipeline_seconds": round(pipeline_seconds, 3),
        "bars_per_second": round(persisted / pipeline_seconds, 1) if pipeline_seconds > 0 else None,
        "duplicate_rows": duplicates,
        "account": account,
        "decisions": digest["decisions"],
        "digest": digest,
        "orders": digest["orders"],  # filled or not (an order on the last bar has no next open to fill at)
        "fills": sum(r["paper"]["fills"] for r in per_symbol),
        "trading_loop_seconds": round(loop_seconds, 1),
        "book": book,
        "quant_model": quant_version,
        "signals_by_agent": dict(sorted(signal_counts(settings, series).items())),
        "dashboard_url": dashboard_url,
        "memory": memory,
        "per_symbol": per_symbol,
    }


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"the demo on {summary['dataset']}: bars in Postgres, paper trading of account "
                        f"{summary['account']}, and the Risk agent's SMA backtests")
    columns = ("symbol", "bars", "first", "last", "last close", "orders", "fills", "position", "paper PnL",
               "SMA 20/100 return", "sharpe", "max DD", "trades", "engine µs")
    for column in columns:
        table.add_column(column, justify="left" if column == "symbol" else "right")
    for row in summary["per_symbol"]:
        bt = row["backtest"]
        figures = ([f"{bt['total_return']:+.1%}", f"{bt['sharpe']:.2f}", f"{bt['max_drawdown']:.1%}",
                    f"{bt['trades']:.0f}", str(bt["engine_us"])] if not bt["error"] else [bt["error"], "", "", "", ""])
        paper = row["paper"]
        table.add_row(row["symbol"], str(row["bars"]), row["first"], row["last"], f"{row['last_close']:.2f}",
                      str(paper["orders"]), str(paper["fills"]), f"{paper['position']:,.0f}", f"{paper['pnl']:+,.0f}",
                      *figures)
    console = Console(width=max(Console().width, 150))
    console.print(table)
    lags = summary["lag_at_replay_end"]
    console.print(
        f"ticks published: {summary['ticks_published']:,} in {summary['replay_seconds']} s "
        f"({summary['ticks_per_second']:,.0f} ticks/s); consumer lag when the replay ended: "
        f"{', '.join(f'{name} {lag:,}' for name, lag in lags.items())}; drained {summary['drain_seconds']} s later: "
        f"the whole loop sustained {summary['sustained_ticks_per_second']:,.0f} ticks/s"
    )
    console.print(
        f"bars persisted: {summary['bars_persisted']:,} in "
        f"{summary['pipeline_seconds']} s ({summary['bars_per_second']:,.0f} bars/s end to end); "
        f"duplicate rows: {summary['duplicate_rows']}"
    )
    book = summary["book"]
    if book:
        console.print(f"decisions: {summary['decisions']:,}; orders: {summary['orders']:,}; fills: {summary['fills']:,}; "
                      f"equity {book['equity']:,.2f} (start 100,000.00), realised {book['realised_pnl']:+,.2f}, "
                      f"unrealised {book['unrealised_pnl']:+,.2f}, fees {book['fees']:,.2f}; "
                      f"trading loop settled {summary['trading_loop_seconds']} s after the replay began")
    else:
        console.print(f"decisions: {summary['decisions']:,}; no fills for {summary['account']}")
    digest = summary["digest"]
    console.print(f"run digest {digest['digest']} over {digest['decisions']:,} decisions, {digest['verdicts']:,} "
                  f"verdicts, {digest['orders']:,} orders, {digest['fills']:,} fills and the final book: the same on "
                  "every run of these bars and models, at any --speed (`algo backtest --agents technical,quant` "
                  "gives the offline one)")
    votes = ", ".join(f"{agent} {count:,}" for agent, count in summary["signals_by_agent"].items())
    console.print(f"agent votes this run: {votes or 'none'} (quant model {summary['quant_model']}); "
                  f"news items replayed: {summary['news_published']:,}")
    memory = summary.get("memory") or {}
    if "error" in memory:
        console.print(f"memory agent: {memory['error']}")
    else:
        reads = memory.get("reads", {})
        ratio = memory.get("hit_ratio")
        console.print(
            f"memory agent: hit ratio {'-' if ratio is None else f'{ratio:.1%}'} of {sum(reads.values()):,} reads (HOT {reads.get('HOT', 0):,}, COLD "
            f"{reads.get('COLD', 0):,}, MISS {reads.get('MISS', 0):,}); {memory.get('demotions', 0):,.0f} demotions, "
            f"{memory.get('drops', 0):,.0f} drops in {memory.get('rounds', 0):,.0f} rounds; Redis used "
            f"{memory.get('redis_used_bytes', 0) / 2**20:.2f} of {memory.get('redis_max_bytes', 0) / 2**20:.2f} MiB "
            f"(capped for the demo); access trace: {(memory.get('trace') or {}).get('path') or 'not recorded'}")
    console.print(f"dashboard (live while the demo runs; `algo bridge` serves it afterwards): {summary['dashboard_url']}")
    console.print("inspect: `algo tail consensus.decisions --from-beginning --limit 5`, psql on DATABASE_URL; "
                  "stop everything with `algo stack down`")
