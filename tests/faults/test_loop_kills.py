"""Fault: kill -9 every worker of the trading loop in turn mid-replay (issue 14, scenario 1).

Four stocks (AAPL, GOOG, IBM, MSFT from 2005, 1,250 daily bars each, under symbols of this run) go
out as 100,000 ticks, 20 a bar, with 200 news items between them, at 500 messages/s with acks=all.
All nine workers run under one fresh app id: bars, persistence, technical, quant, analyst, consensus,
risk, broker and memory. Once a tenth of the replay is acknowledged, each worker in turn gets SIGKILL
and is started again at once (a fresh process: its tables' changelogs and its group's committed
offsets are all it has), while the replay goes on.

Audit afterwards:
- every acknowledged tick is on market.ticks once, and market_data holds every bar whole: ticks -> bars exact;
- per bar one decision, per decision one verdict, per decision at most one order, per order at most
  one fill, no approved verdict without its order; a record re-sent after a kill is the same record
  under the same id (a copy, dropped by the sinks), never a second id;
- the run's decisions, verdicts, orders, fills and final book are row for row those of the offline
  run of the same bars (`algo backtest --agents technical,quant`): nothing was lost or counted twice
  anywhere in the loop (the analyst runs and is killed too, with weight 0, so the comparison holds);
- every news item got its analyst vote and is in the vault; nothing of the run was dead-lettered;
  no worker crashed.
The figures go to benchmarks/results/faults.json ("loop_workers_kill_9").
"""
from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict

import numpy as np
import psycopg
import pytest

from ops.demo import DEMO_WORKERS, groups_lag, remove_run_state, run_book, run_environment
from streams.bus import digest as run_digest
from streams.bus.codecs import CodecRegistry
from streams.market.bars import from_micros, to_micros
from streams.market.datasets import BarSeries, load_dataset
from streams.offline.pipeline import run_offline
from streams.settings import Settings
from tests import fixtures
from tests.faults.harness import PacedPublisher, stop_all
from tests.faults.results import record_scenario
from tests.kafka_tools import Worker, commit_inputs_at_ends, ends, read_from, wait_for
from tests.streams.test_outages import dead_letters_with_keys, started, stopped

pytestmark = [pytest.mark.integration, pytest.mark.faults]

STOCKS = ("AAPL", "GOOG", "IBM", "MSFT")
# the analyst votes on companies its symbol table knows: the items name them, so its votes are on the
# real tickers (weight 0 in this run's consensus), not on this run's renamed symbols
COMPANIES = {"AAPL": "Apple", "GOOG": "Google", "IBM": "IBM", "MSFT": "Microsoft"}
BARS_PER_SYMBOL, TICKS_PER_BAR, NEWS_EVERY = 1_250, 20, 25
RATE = 500  # messages/s: the replay lasts longer than the nine kills and restarts
KILL_ORDER = ("bars", "persistence", "technical", "quant", "consensus", "risk", "broker", "analyst", "memory")
SOURCE = "replay:stocks"
SESSION_US = (int(14.5 * 3600e6), int(21 * 3600e6))  # a day's ticks spread over the NYSE session in UTC
DERIVED = ("agent.signals", "consensus.decisions", "risk.verdicts", "orders", "fills")


def loop_series(run: str) -> list[BarSeries]:
    """The four stocks' bars over the same days, renamed for this run. Volumes are rounded down to a
    multiple of TICKS_PER_BAR, so the ticks' sizes (a twentieth each) add back up exactly."""
    out = []
    for series in load_dataset("stocks", list(STOCKS)):
        keep = np.flatnonzero(series.dates >= np.datetime64("2005-01-01"))[:BARS_PER_SYMBOL]
        out.append(BarSeries(f"L{run}{series.symbol}", series.dates[keep], series.open[keep], series.high[keep],
                             series.low[keep], series.close[keep],
                             np.floor(series.volume[keep] / TICKS_PER_BAR) * TICKS_PER_BAR))
    assert len({tuple(s.dates) for s in out}) == 1 and len(out[0]) == BARS_PER_SYMBOL
    return out


def bar_prices(o: float, h: float, lo: float, c: float) -> list[float]:
    """TICKS_PER_BAR prices from the open to the close through both extremes (the low first on an up
    bar), straight lines between them, never outside [low, high]."""
    first, second = (lo, h) if c >= o else (h, lo)
    anchors = {0: o, 6: first, 13: second, TICKS_PER_BAR - 1: c}
    keys = sorted(anchors)
    prices = []
    for k in range(TICKS_PER_BAR):
        if k in anchors:
            prices.append(anchors[k])
            continue
        k0 = max(a for a in keys if a < k)
        k1 = min(a for a in keys if a > k)
        p = anchors[k0] + (anchors[k1] - anchors[k0]) * (k - k0) / (k1 - k0)
        prices.append(min(max(p, lo), h))
    return prices


def loop_messages(settings, series: list[BarSeries], run: str) -> tuple[list, list[tuple[str, int]], list[dict]]:
    """(messages in event time, (symbol, seq) of each tick message or None, news items)."""
    codecs = CodecRegistry(settings.schema_registry_url)
    ticks_codec, news_codec = codecs.for_topic("market.ticks"), codecs.for_topic("news.items")
    step = (SESSION_US[1] - SESSION_US[0]) // (TICKS_PER_BAR - 1)
    events, news = [], []
    for s in series:
        days_us = s.dates.astype("datetime64[us]").astype(np.int64)
        for i in range(len(s)):
            prices = bar_prices(float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
            size = float(s.volume[i]) / TICKS_PER_BAR
            for k, price in enumerate(prices):
                ts_us = int(days_us[i]) + SESSION_US[0] + k * step
                events.append((ts_us, 1, s.symbol, {"symbol": s.symbol, "ts": from_micros(ts_us), "price": price,
                                                    "size": size, "source": SOURCE, "seq": i * TICKS_PER_BAR + k}))
            if i % NEWS_EVERY == NEWS_EVERY // 2:  # before the day's session opens
                company = COMPANIES[s.symbol[len(run) + 1:]]
                item = fixtures.news_item(id=f"{run}-{s.symbol}-{i}", ts=from_micros(int(days_us[i]) + 12 * 3600_000_000),
                                          headline=f"{company} {'beats estimates' if i % 2 else 'cuts its outlook'}",
                                          symbols=[])
                news.append(item)
                events.append((to_micros(item["ts"]), 0, item["id"], item))
    events.sort(key=lambda e: e[:3])
    messages, ids = [], []
    for _, kind, key, record in events:
        if kind == 1:
            messages.append(("market.ticks", key.encode(), ticks_codec.encode(record)))
            ids.append((record["symbol"], record["seq"]))
        else:
            messages.append(("news.items", key.encode(), news_codec.encode(record)))
            ids.append(None)
    return messages, ids, news


def distinct_by(records: list[dict], key: str) -> tuple[dict[str, dict], int, int]:
    """(records by id, copies beyond the first, ids whose copies differ)."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_id[record[key]].append(record)
    return ({i: same[0] for i, same in by_id.items()}, len(records) - len(by_id),
            sum(1 for same in by_id.values() if any(c != same[0] for c in same)))


@pytest.fixture(scope="module")
def settings(provisioned) -> Settings:
    return fixtures.with_small_policy(provisioned, "faults-loop")


class LoopRun:
    """One replay of the four stocks through all nine workers under a fresh app id and paper account,
    with what is needed to strike mid-replay and to audit afterwards."""

    def __init__(self, settings: Settings, logs):
        self.settings, self.logs = settings, logs
        run, self.account = uuid.uuid4().hex[:4].upper(), f"faults-{uuid.uuid4().hex[:6]}"
        self.env = {**run_environment(settings, self.account), "BAR_IDLE_CLOSE_S": "1",
                    "CONSENSUS_WEIGHTS": "technical=1,quant=1,analyst=0",
                    # a killed member holds its partitions until the group gives up on it
                    "BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1"}
        self.run_settings = Settings.from_env({**os.environ, **self.env})
        self.series = loop_series(run)
        self.messages, self.ids, self.news = loop_messages(settings, self.series, run)
        assert sum(1 for i in self.ids if i is not None) == 100_000
        self.publisher = PacedPublisher(settings, self.messages, RATE)
        self.starts = {topic: ends(settings, topic) for topic in ("market.ticks", *DERIVED)}
        commit_inputs_at_ends(settings, self.run_settings.app_id, DEMO_WORKERS)
        self.workers: dict[str, Worker] = {}
        self.started: dict[str, int] = {}

    def start(self) -> None:
        """Every worker, then the replay, until a tenth of it is acknowledged."""
        for name in DEMO_WORKERS:
            self._start(name)
        for worker in self.workers.values():
            worker.wait_ready(timeout=300)
        self.publisher.start_and_wait_for(0.1)

    def _start(self, name: str) -> None:
        self.started[name] = self.started.get(name, 0) + 1
        self.workers[name] = Worker(name, self.logs / f"{name}-{self.started[name]}.log", wait=False, **self.env)

    def kill_and_restart(self, name: str) -> float:
        """SIGKILL (no commit, no goodbye to the group), a new process at once; seconds until it is ready."""
        self.workers[name].process.kill()
        self.workers[name].process.wait(10)
        began = time.monotonic()
        self._start(name)
        self.workers[name].wait_ready(timeout=180)
        return round(time.monotonic() - began, 1)

    def finish(self) -> dict:
        """The rest of the replay, every bar decided and judged, every group drained; the audit."""
        self.publisher.finish()
        symbols, expected_bars = {s.symbol for s in self.series}, BARS_PER_SYMBOL * len(self.series)

        def settled():
            decided = {(d["symbol"], d["ts"]) for _, d in read_from(self.settings, self.starts["consensus.decisions"],
                                                                    120) if d["symbol"] in symbols}
            judged = {v["decision_id"] for _, v in read_from(self.settings, self.starts["risk.verdicts"], 120)
                      if v["symbol"] in symbols}
            crashed = [n for n, w in self.workers.items() if w.process.poll() is not None]
            assert not crashed, f"worker(s) {crashed} exited"
            return len(decided) == expected_bars and len(judged) == expected_bars

        wait_for(settled, timeout=600, every=5, what=f"{expected_bars} decisions and verdicts")
        groups = [f"{self.run_settings.app_id}-{name}" for name in DEMO_WORKERS]
        wait_for(lambda: groups_lag(self.settings, groups) == 0, timeout=180, every=2, what="every group drained")
        return audit_loop(self.settings, self.run_settings, self.series, self.ids, self.publisher, self.starts,
                          self.account, self.news)

    def stop(self) -> None:
        try:
            stop_all(self.workers)  # fails on "Crashed" in a worker's log
        finally:
            remove_run_state(self.run_settings)


def assert_exact(figures: dict, news: int) -> None:
    """Nothing lost, nothing counted twice, anywhere in the loop."""
    assert figures["acknowledged"] == figures["sent"], figures
    assert figures["lost"] == 0 and figures["duplicated"] == 0 and figures["dead_lettered"] == 0, figures
    assert figures["bars_in_vault"] == figures["bars_expected"], figures
    assert (figures["orders_in_vault"], figures["fills_in_vault"]) == (figures["orders"], figures["fills"]), figures
    assert figures["derived_duplicated"] == {}, figures
    assert figures["copies_that_differ"] == 0 and figures["approved_without_order"] == 0, figures
    assert figures["news_without_vote"] == 0 and figures["news_in_vault"] == news, figures
    assert figures["first_difference_from_offline"] is None, figures


@pytest.mark.timeout(1200)
def test_every_worker_of_the_loop_killed_in_turn_loses_and_repeats_nothing(settings, tmp_path):
    loop = LoopRun(settings, tmp_path)
    restarts: dict[str, float] = {}
    try:
        loop.start()
        for name in KILL_ORDER:
            restarts[name] = loop.kill_and_restart(name)
            time.sleep(3)  # the loop goes on between the kills
        killed_until = len(loop.publisher.acknowledged)
        figures = loop.finish()
        record_scenario("loop_workers_kill_9", {
            "what": "SIGKILL to each of the nine workers in turn (bars, persistence, technical, quant, consensus, "
                    "risk, broker, analyst, memory) mid-replay of 100,000 ticks and 200 news items, each started "
                    "again at once", **figures, "acknowledged_when_the_kills_ended": killed_until,
            "restart_until_ready_s": restarts, "session_timeout_s": 10})
        # copies_sent_again counts what the kills caught between work and its commit (0.2 s apart): 2 to 6
        # same-id copies in the runs so far; too few to assert on, the crash-recovery test aims for them
        assert_exact(figures, len(loop.news))
    finally:
        loop.stop()


@pytest.mark.timeout(1200)
def test_registry_postgres_and_redis_down_30_s_each_in_turn_lose_nothing(settings, tmp_path):
    """Issue 14, scenario 4: the agents wait and retry while a service is down, dead-letter nothing
    valid, and everything lands once it is back."""
    loop = LoopRun(settings, tmp_path)
    down: dict[str, float] = {}
    stopped_now = None
    try:
        loop.start()
        for service in ("registry", "postgres", "redis"):
            stopped(settings, service)
            stopped_now, began = service, time.monotonic()
            time.sleep(30)
            started(settings, service)
            stopped_now, down[service] = None, round(time.monotonic() - began, 1)
            time.sleep(5)
        figures = loop.finish()
        record_scenario("loop_outages_30s", {
            "what": "the schema registry, then Postgres, then Redis stopped for 30 s each mid-replay of 100,000 "
                    "ticks and 200 news items through the nine workers", **figures, "down_s": down})
        assert_exact(figures, len(loop.news))
        waited = {name: sum(log.read_text(errors="replace").count(" waits: ") for log in tmp_path.glob(f"{name}-*.log"))
                  for name in DEMO_WORKERS}
        assert sum(waited.values()) > 0, f"no agent met an outage: {waited}"
    finally:
        if stopped_now is not None:
            started(settings, stopped_now)  # leave the stack as the other tests expect it
        loop.stop()


def audit_loop(settings, run_settings, series, ids, publisher, starts, account: str, news: list[dict]) -> dict:
    symbols = {s.symbol for s in series}
    on_topic = Counter((t["symbol"], t["seq"]) for _, t in read_from(settings, starts["market.ticks"], 120)
                       if t["symbol"] in symbols)
    acked = {index for _, index in publisher.acknowledged}
    news_refs = {f"news:{n['id']}" for n in news}
    timed = {topic: [(ms, r) for ms, r in read_from(settings, starts[topic], 120)
                     if (r["symbol"] in symbols and r.get("account", account) == account)
                     or (topic == "agent.signals" and r["agent"] == "analyst" and r["input_refs"][:1]
                         and r["input_refs"][0] in news_refs)] for topic in DERIVED}
    ours = {topic: [r for _, r in records] for topic, records in timed.items()}
    decided_at = sorted(ms for ms, _ in timed["consensus.decisions"])
    signals, signal_copies, signals_differ = distinct_by(ours["agent.signals"], "signal_id")
    decisions, decision_copies, decisions_differ = distinct_by(ours["consensus.decisions"], "decision_id")
    verdicts, verdict_copies, verdicts_differ = distinct_by(ours["risk.verdicts"], "verdict_id")
    orders, order_copies, orders_differ = distinct_by(ours["orders"], "order_id")
    fills, fill_copies, fills_differ = distinct_by(ours["fills"], "fill_id")

    def more_than_one(counts: Counter) -> int:
        return sum(n - 1 for n in counts.values() if n > 1)

    derived_duplicated = {name: n for name, n in {
        "decisions_per_bar": more_than_one(Counter((d["symbol"], d["ts"]) for d in decisions.values())),
        "verdicts_per_decision": more_than_one(Counter(v["decision_id"] for v in verdicts.values())),
        "orders_per_decision": more_than_one(Counter(o["decision_id"] for o in orders.values())),
        "fills_per_order": more_than_one(Counter(f["order_id"] for f in fills.values())),
        "analyst_votes_per_item_and_symbol": more_than_one(Counter(
            (s["input_refs"][0], s["symbol"]) for s in signals.values() if s["agent"] == "analyst")),
    }.items() if n}
    ordered = {o["decision_id"] for o in orders.values()}
    approved_without_order = sum(1 for v in verdicts.values() if v["verdict"] != "REJECT"
                                 and float(v["approved_quantity"]) != 0.0 and v["decision_id"] not in ordered)
    voted_on = {s["input_refs"][0].removeprefix("news:") for s in signals.values() if s["agent"] == "analyst"}

    expected = {(s.symbol, from_micros(int(d))): (*(round(float(v[i]), 6) for v in (s.open, s.high, s.low, s.close,
                                                                                     s.volume)), TICKS_PER_BAR)
                for s in series for i, d in enumerate(s.dates.astype("datetime64[us]").astype(np.int64))}
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("SELECT symbol, ts, open, high, low, close, volume, tick_count FROM market_data "
                            "WHERE symbol = ANY(%s) AND interval = '1d'", (sorted(symbols),)).fetchall()
        news_in_vault = conn.execute("SELECT count(*) FROM news WHERE id = ANY(%s)",
                                     ([n["id"] for n in news],)).fetchone()[0]
        vault_orders = {r[0] for r in conn.execute("SELECT order_id FROM orders WHERE account = %s", (account,))}
        vault_fills = {r[0] for r in conn.execute("SELECT fill_id FROM fills WHERE account = %s", (account,))}
    in_vault = {(symbol, ts): (*(round(float(x), 6) for x in (o, h, lo, c, v)), n)
                for symbol, ts, o, h, lo, c, v, n in rows}

    from streams.quant import model as quant_model

    offline = run_offline(run_settings, series, SOURCE, ("technical", "quant"), quant_model.fetch(run_settings))
    want = run_digest.trading_rows(offline.decisions, offline.verdicts, offline.orders, offline.fills, offline.book)
    got = run_digest.trading_rows(decisions.values(), verdicts.values(), orders.values(), fills.values(),
                                  run_book(settings, account))
    first_difference = next((f"{part}: {len(want[part])} offline vs {len(got[part])} streamed rows; first "
                             f"difference {next(((a, b) for a, b in zip(want[part], got[part]) if a != b), None)}"
                             for part in want if want[part] != got[part]), None)
    dead = dead_letters_with_keys(settings, {s.encode() for s in symbols} | {n["id"].encode() for n in news})
    return {
        "sent": len(publisher.messages), "acknowledged": len(acked),
        "delivered": sum(on_topic.values()),
        "lost": sum(1 for index in acked if ids[index] is not None and on_topic[ids[index]] == 0),
        "duplicated": more_than_one(on_topic),
        "dead_lettered": len(dead), "seconds_without_acks": publisher.seconds_without_acks(),
        # the longest wait for the next decision once the first was out (broker timestamps)
        "seconds_without_decisions": round(max((b - a for a, b in zip(decided_at, decided_at[1:])), default=0) / 1e3, 1),
        "bars_expected": len(expected), "bars_in_vault": sum(1 for k, v in in_vault.items() if expected.get(k) == v),
        "decisions": len(decisions), "verdicts": len(verdicts), "orders": len(orders), "fills": len(fills),
        "orders_in_vault": len(vault_orders & set(orders)), "fills_in_vault": len(vault_fills & set(fills)),
        "copies_sent_again": {"agent.signals": signal_copies, "consensus.decisions": decision_copies,
                              "risk.verdicts": verdict_copies, "orders": order_copies, "fills": fill_copies},
        "copies_that_differ": decisions_differ + verdicts_differ + orders_differ + fills_differ,
        "analyst_votes_whose_copies_differ": signals_differ,
        "derived_duplicated": derived_duplicated, "approved_without_order": approved_without_order,
        "news_without_vote": sum(1 for n in news if n["id"] not in voted_on), "news_in_vault": news_in_vault,
        "digest": run_digest.trading_digest(decisions.values(), verdicts.values(), orders.values(), fills.values(),
                                            run_book(settings, account))["digest"],
        "first_difference_from_offline": first_difference,
    }

