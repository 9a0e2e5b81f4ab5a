"""Integration: kill -9 the broker and risk workers mid-replay, restart them, and prove from the
topics and Postgres that no decision was ordered twice, no order filled twice, no book applied a fill
twice and nothing was dead-lettered as a duplicate.

Why it can fail: Faust is at-least-once. A worker killed with SIGKILL loses the offsets it has not
committed, and its successor handles those messages again. With random (uuid4) ids every repeat
is a new order or fill: a second order id for one decision on the orders topic, a second row in
`orders`/`fills`, and books that count the fill twice. With derived ids the repeat has the same id:
the broker and the risk agent drop it, and a copy that reached a topic anyway is the same message
twice, which the sinks drop (ON CONFLICT DO NOTHING, no dead letter).

The kill has to land on processed-but-uncommitted work (the first broker never commits by the timer), or there is
nothing to re-process: the test kills when an order on the topic came from a verdict past the
broker group's committed offset, and a verdict from a decision past the risk group's, so the
restarted workers must read those again (the test checks that they did).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from ops.demo import group_lags, groups_lag
from streams.bus.codecs import CodecRegistry
from streams.errors import CodecError
from streams.market.bars import from_micros
from streams.market.datasets import BarSeries, load_bars
from streams.market.replay import replay
from tests.kafka_tools import commit_inputs_at_ends

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# the workers (each group starts at the ends of what it reads: tests.kafka_tools.commit_inputs_at_ends)
WORKER_NAMES = ("signals", "persistence", "risk", "broker")
DERIVED = ("agent.signals", "consensus.decisions", "risk.verdicts", "orders", "fills")
INITIAL_CASH = 100_000.0


class Workers:
    """`algo worker NAME` processes of one fresh app id, each restartable under a new log."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir, self.env = log_dir, env
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, list[Path]] = defaultdict(list)

    def start(self, *names: str, timeout: float = 180) -> None:
        for name in names:
            log = self.log_dir / f"{name}-{len(self.logs[name])}.log"
            self.logs[name].append(log)
            with open(log, "wb") as out:
                # cwd: Faust keeps a data directory there
                self.processes[name] = subprocess.Popen([sys.executable, "-m", "ops.cli", "worker", name],
                                                        cwd=self.log_dir, env=self.env, stdout=out,
                                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                if b"[^Worker]: Ready" in self.logs[name][-1].read_bytes():
                    pending.discard(name)
                elif self.processes[name].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"worker {name} did not become ready:\n{self.text(name)[-3000:]}")
            time.sleep(0.3)

    def kill(self, *names: str) -> None:
        for name in names:
            os.kill(self.processes[name].pid, signal.SIGKILL)  # no shutdown, no last commit
        for name in names:
            self.processes[name].wait(10)

    def text(self, name: str, run: int = -1) -> str:
        return self.logs[name][run].read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def ends(settings, topic: str) -> dict[int, int]:
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def read_since(settings, topic: str, start: dict[int, int], decode) -> list:
    """Every message on `topic` from the `start` offsets up to its current end, decoded by `decode`
    (messages it returns None for are left out)."""
    stop = ends(settings, topic)
    consumer = Consumer(settings.kafka_config({"group.id": f"t-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in stop if stop[p] > start.get(p, 0)])
    left = {p for p in stop if stop[p] > start.get(p, 0)}
    found, deadline = [], time.monotonic() + 60
    try:
        while left and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            value = decode(message)
            if value is not None:
                found.append(value)
            if message.offset() >= stop[message.partition()] - 1:
                left.discard(message.partition())
        assert not left, f"could not read {topic} to its end"
        return found
    finally:
        consumer.close()


def avro(codecs: CodecRegistry, topic: str, keep):
    def decode(message):
        try:
            record = codecs.for_topic(topic).decode(message.value())
        except CodecError:  # other tests publish undecodable messages on purpose
            return None
        return record if keep(record) else None
    return decode


def signed(fill: dict) -> float:
    return fill["quantity"] if fill["side"] == "BUY" else -fill["quantity"]


@pytest.fixture
def slice_of_bundled_data():
    """A year of AAPL (2002-03 on, a choppy year with many stance changes) under a symbol of its own,
    so nothing else on the shared stack trades it."""
    aapl = load_bars("stocks", "AAPL")
    keep = slice(500, 750)
    symbol = f"K{uuid.uuid4().hex[:6].upper()}"
    return BarSeries(symbol, aapl.dates[keep], aapl.open[keep], aapl.high[keep], aapl.low[keep], aapl.close[keep],
                     aapl.volume[keep])


def test_killed_broker_and_risk_workers_never_order_or_fill_twice(provisioned, tmp_path, slice_of_bundled_data):
    series, symbol = slice_of_bundled_data, slice_of_bundled_data.symbol
    app_id, account = f"test-crash-{uuid.uuid4().hex[:8]}", f"crash-{uuid.uuid4().hex[:6]}"
    settings = replace(provisioned, app_id=app_id)
    codecs = CodecRegistry(settings.schema_registry_url)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "ALGO_APP_ID": app_id, "RISK_ACCOUNT": account, "RISK_INITIAL_CASH": str(INITIAL_CASH),
           "CONSENSUS_WEIGHTS": "technical=1,quant=0", "ALGO_OFFSET_RESET": "latest", "BAR_IDLE_CLOSE_S": "1",
           # Faust's default commit pace (the event-time barriers wait on commits)
           "ALGO_COMMIT_INTERVAL_S": "2.8"}
    start = {topic: ends(settings, topic) for topic in (*DERIVED, "dead-letter")}
    commit_inputs_at_ends(settings, app_id, WORKER_NAMES)
    workers = Workers(tmp_path, env)
    try:
        workers.start("signals", "persistence", "risk")
        # the first broker never commits by the timer, so the kill lands on processed-but-uncommitted
        # verdicts: at 2.8 s, and then 10 s, a loaded machine's look at the topics (several consumers a
        # look) missed every window in 200 s. Its successor commits at the normal pace, so the loop settles.
        workers.env = {**env, "ALGO_COMMIT_INTERVAL_S": "3600"}
        workers.start("broker")
        workers.env = env
        ours = avro(codecs, "orders", lambda r: r["account"] == account)

        def orders_so_far() -> int:
            return len(read_since(settings, "orders", start["orders"], ours))

        replayer = threading.Thread(target=replay, args=(settings, [series], "test:crash"),
                                    kwargs={"speed": 300_000.0, "show_progress": False})  # ~100 s for the year
        replayer.start()
        deadline = time.monotonic() + 200  # orders are few: the kill needs one caught before its commit
        while not (orders_so_far() >= 3 and work_past_commits(settings, codecs, app_id, start, symbol, account)):
            assert time.monotonic() < deadline, (f"no uncommitted orders and verdicts for {account} within 200 s "
                                                 f"({orders_so_far()} orders so far)")
            time.sleep(0.2)
        workers.kill("broker", "risk")
        workers.start("broker", "risk")
        replayer.join(240)
        assert not replayer.is_alive(), "the replay did not finish"

        groups = [f"{app_id}-{name}" for name in WORKER_NAMES]
        last, quiet_since, deadline = None, time.monotonic(), time.monotonic() + 180
        while True:  # settled: nothing new for 5 s and every group has committed all it read
            now = orders_so_far(), groups_lag(settings, groups)
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif now[1] == 0 and time.monotonic() - quiet_since >= 5:
                break
            assert time.monotonic() < deadline, (f"the loop did not settle: (orders, lag) = {now}; lag per group "
                                                 f"{group_lags(settings, groups)}")
            time.sleep(1)

        orders = read_since(settings, "orders", start["orders"], ours)
        fills = read_since(settings, "fills", start["fills"], avro(codecs, "fills", lambda r: r["account"] == account))
        verdicts = read_since(settings, "risk.verdicts", start["risk.verdicts"],
                              avro(codecs, "risk.verdicts", lambda r: r["symbol"] == symbol))
        assert len(orders) >= 6 and fills, f"too little traded to prove anything: {len(orders)} orders"

        # On the topics a repeat may appear (sent, then the worker died before recording it), but only as
        # the same message again: per decision one order id, per order one fill id, and every copy of
        # an id identical. uuid4 ids break the first two: a repeat there is a second id.
        order_ids_per_decision, fill_ids_per_order = defaultdict(set), defaultdict(set)
        for order in orders:
            order_ids_per_decision[order["decision_id"]].add(order["order_id"])
        for fill in fills:
            fill_ids_per_order[fill["order_id"]].add(fill["fill_id"])
        assert {d: ids for d, ids in order_ids_per_decision.items() if len(ids) > 1} == {}, "a decision ordered twice"
        assert {o: ids for o, ids in fill_ids_per_order.items() if len(ids) > 1} == {}, "an order filled twice"
        for records, key in ((orders, "order_id"), (fills, "fill_id")):
            copies = defaultdict(list)
            for record in records:
                copies[record[key]].append(record)
            assert all(all(c == same[0] for c in same) for same in copies.values()), f"two different {key} copies"
        distinct_orders = {o["order_id"]: o for o in orders}
        distinct_fills = {f["fill_id"]: f for f in fills}
        assert set(fill_ids_per_order) <= set(distinct_orders), "a fill for an order that was never sent"

        # the restarted workers did re-read work of the killed ones (else this test proved nothing):
        # they dropped a repeat, or a copy of an id reached a topic twice
        repeats = sum(workers.text(name, 1).count("repeat of") for name in ("broker", "risk"))
        copies_on_topics = ((len(orders) - len(distinct_orders)) + (len(fills) - len(distinct_fills))
                            + (len(verdicts) - len({v["verdict_id"] for v in verdicts})))
        print(f"{len(distinct_orders)} orders, {len(distinct_fills)} fills; repeats dropped by the restarted "
              f"workers: {repeats}; same-id copies on the topics: {copies_on_topics}")
        assert repeats + copies_on_topics > 0, "the kills hit no uncommitted work: nothing was re-processed"

        # the vault holds each order and fill once, and all of them (a repeat was dropped, nothing lost)
        quantity = sum(signed(f) for f in distinct_fills.values())
        cash = INITIAL_CASH - sum(signed(f) * f["price"] + f["fee"] for f in distinct_fills.values())

        def vault():
            with psycopg.connect(settings.database_url) as conn:
                return (conn.execute("SELECT order_id, decision_id FROM orders WHERE account = %s",
                                     (account,)).fetchall(),
                        conn.execute("SELECT fill_id, order_id FROM fills WHERE account = %s", (account,)).fetchall(),
                        conn.execute("SELECT cash FROM accounts WHERE account = %s", (account,)).fetchone(),
                        dict(conn.execute("SELECT symbol, quantity FROM positions WHERE account = %s",
                                          (account,)).fetchall()))

        # the broker writes its book every second while it changes: give the last write a moment
        for _ in range(20):
            rows, fill_rows, book, positions = vault()
            if book is not None and abs(float(book[0]) - cash) < 0.01:
                break
            time.sleep(0.5)
        assert {r[0] for r in rows} == set(distinct_orders) and len({r[1] for r in rows}) == len(rows)
        assert {r[0] for r in fill_rows} == set(distinct_fills) and len({r[1] for r in fill_rows}) == len(fill_rows)

        # both books applied each fill once: the broker's (in Postgres) and the risk agent's (its table's changelog)
        assert book is not None and float(book[0]) == pytest.approx(cash, abs=0.01)
        assert float(positions.get(symbol, 0.0)) == pytest.approx(quantity, abs=1e-6)
        # the risk agent's book is the book as of its last judged decision: the fills before that moment
        risk_state = latest_table_value(settings, f"{app_id}-risk-account_to_risk-changelog", account)
        judged_until = from_micros(risk_state["judged"][symbol])
        before = [f for f in distinct_fills.values() if f["ts"] < judged_until]
        assert risk_state["book"]["cash"] == pytest.approx(
            INITIAL_CASH - sum(signed(f) * f["price"] + f["fee"] for f in before), abs=1e-6)
        assert risk_state["book"]["positions"].get(symbol, {}).get("quantity", 0.0) == pytest.approx(
            sum(signed(f) for f in before), abs=1e-9)

        # nothing derived from this run was dead-lettered (a repeat is dropped by the sinks, not refused)
        def ours_dead(message):
            letter = codecs.for_topic("dead-letter").decode(message.value())
            if letter["source_topic"] not in DERIVED or letter["value"] is None:
                return None
            try:
                record = codecs.for_topic(letter["source_topic"]).decode(letter["value"])
            except CodecError:
                return None
            return letter if record.get("symbol") == symbol else None

        dead = read_since(settings, "dead-letter", start["dead-letter"], ours_dead)
        assert dead == [], [f"{d['source_topic']} by {d['agent']}: {d['error']}" for d in dead]
    finally:
        workers.stop()
    for name, logs in workers.logs.items():
        for run in range(len(logs)):
            assert "Crashed" not in workers.text(name, run), workers.text(name, run)[-3000:]


def committed(settings, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer(settings.kafka_config({"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = [TopicPartition(topic, p) for p in ends(settings, topic)]
        return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


def work_past_commits(settings, codecs, app_id: str, start: dict, symbol: str, account: str) -> bool:
    """True when the broker has sent an order for a verdict its group has not committed yet: killed now,
    it must handle those verdicts again. (The risk agent takes a decision into its changelogged pending
    table and commits it before judging it in event time, so what it has not judged yet comes back from
    that table after the kill, not from a redelivery; the kill lands while decisions wait there.)"""
    ordered = {r["decision_id"] for _, _, r in read_since(
        settings, "orders", start["orders"], avro_at(codecs, "orders", lambda r: r["account"] == account))}
    verdicts = read_since(settings, "risk.verdicts", start["risk.verdicts"],
                          avro_at(codecs, "risk.verdicts", lambda r: r["symbol"] == symbol))
    broker_at = committed(settings, f"{app_id}-broker", "risk.verdicts")
    return any(r["decision_id"] in ordered and offset >= broker_at[p] for p, offset, r in verdicts)


def avro_at(codecs: CodecRegistry, topic: str, keep):
    """Like avro(), with the message's (partition, offset) in front."""
    decode = avro(codecs, topic, keep)

    def located(message):
        record = decode(message)
        return None if record is None else (message.partition(), message.offset(), record)
    return located


def latest_table_value(settings, changelog: str, key: str) -> dict:
    """The last value a Faust table wrote for `key` (JSON keys and values) on its changelog topic."""
    encoded = json.dumps(key).encode()
    values = read_since(settings, changelog, {}, lambda m: (m.offset(), m.value()) if m.key() == encoded else None)
    assert values, f"no {key} in {changelog}"
    return json.loads(values[-1][1])
