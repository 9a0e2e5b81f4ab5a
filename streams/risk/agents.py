"""Risk agent: decisions -> RiskVerdicts through risk_core's pre-trade check, in event time
(streams.risk.sequencer; README, "Event time"); backtest requests -> BacktestResults through
risk_core's backtester.

Decisions are judged in time order over all symbols, each against the paper book as of its time:
the fills of earlier orders at the broker's prices (the broker's own fill function), valuation at
each symbol's last close before it. A decision waits until every bar before its time is known: a
round checks that the groups running the bar agent have committed market.ticks up to where it
ended when the round began, and that this worker has read market.bars up to where that left it
(streams.bus.progress).

State: `account_to_risk` (the book, open orders, what is judged), `decision_to_pending` and
`symbol_bar_to_prices` (bars by "<symbol>|<µs>"), mirrored in memory. They are written from
several streams and the round task, so the partitioner places them; run one risk worker per
account. Backtests run in a thread; the C++ engine releases the GIL.

After a crash Faust re-delivers what was not committed: a decision already judged (its id, or a
time at or before its symbol's last judged bar) is dropped. A verdict is sent before the state that
records it is written, so a crash in between judges the same book again and re-sends the same
verdict (same id) instead of losing it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import datetime

import numpy as np
import psycopg

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter,
    events_without_gaps, log, raw_topic, send_dead_letter, settings)
from streams.bus.progress import StreamProgress, wait_drained, wait_read_through
from streams.market.bars import to_micros
from streams.market.datasets import BarSeries, DATASETS, load_dataset
from streams.market.store import read_bars_async
from streams.errors import AlgoError, DataError, ServiceUnavailable
from streams.outages import postgres_errors, until_available
from streams.memory.keys import cache_key
from streams.memory.store import AccessLog, TieredStore
from streams.risk import sequencer
from streams.risk.rules import RETURNS_WINDOW, backtest_result
from streams.workers import groups_running

AGENT = "risk"
BAR_AGENT_MODULE = "streams.market.agents"
CONSENSUS_MODULE = "streams.consensus.agents"
risk_settings = settings.risk

decisions_topic = raw_topic("consensus.decisions")
bars_topic = raw_topic("market.bars")
requests_topic = raw_topic("backtest.requests")
verdicts_topic = avro_topic("risk.verdicts")
results_topic = avro_topic("backtest.results")

account_to_risk = app.Table("account_to_risk", partitions=settings.topic_partitions, use_partitioner=True)
decision_to_pending = app.Table("decision_to_pending", partitions=settings.topic_partitions, use_partitioner=True)
symbol_bar_to_prices = app.Table("symbol_bar_to_prices", partitions=settings.topic_partitions, use_partitioner=True)
_lock = asyncio.Lock()  # the streams and the round task take turns on the state
_mirror: dict = {"history": None, "pending": None}
_progress: dict = {"client": None}
_bars_read: dict[int, int] = {}  # market.bars partition -> the offset after the last bar handled
_consensus = {"seen": time.monotonic(), "checked": 0.0}  # when a consensus worker was last seen running
_silent: dict = {"symbols": set(), "warned": False}
# backtest results are read through Redis: a repeat of the same parameters skips the C++ run
memory = TieredStore(settings, agent=AGENT, access_log=AccessLog(settings, AGENT))


def silent_symbols() -> set[str]:
    """Every symbol, once no consensus worker has run in this app for RISK_MAX_WAIT_S (then no
    decision is on its way); none while one runs, however far its decisions lag."""
    if time.monotonic() - _consensus["seen"] <= risk_settings.max_wait_s:
        return set()
    return set(_history().symbols())


async def note_consensus_running() -> None:
    """Checks, at most once a second, whether a worker runs the consensus (its group has members)."""
    now = time.monotonic()
    if now - _consensus["checked"] < 1.0:
        return
    _consensus["checked"] = now
    if await asyncio.to_thread(_progress_client().active_groups, groups_running(settings, CONSENSUS_MODULE)):
        _consensus["seen"] = now


def _state() -> dict:
    return account_to_risk.get(risk_settings.account) or sequencer.new_state(risk_settings)


def _history() -> sequencer.BarHistory:
    """The bars, rebuilt from the table once (after a restart the table has recovered them)."""
    if _mirror["history"] is None:
        history = sequencer.BarHistory()
        for key, (open_, close) in list(symbol_bar_to_prices.items()):
            symbol, _, ts_us = key.rpartition("|")
            history.add(symbol, int(ts_us), open_, close)
        _mirror["history"] = history
    return _mirror["history"]


def _pending() -> dict[str, dict]:
    if _mirror["pending"] is None:
        _mirror["pending"] = {key: value for key, value in list(decision_to_pending.items()) if value}
    return _mirror["pending"]


async def judge_now() -> None:
    """Judges what can be judged and sends the verdicts (called with _lock held)."""
    pending = _pending()
    before = set(pending)
    silent, state = silent_symbols(), _state()
    if not silent:
        _silent["warned"] = False
    elif pending and not _silent["warned"]:  # said once per silence, when it first decides something
        log.warning("risk: no consensus worker has run for %.0f s: decisions no longer wait for other symbols' "
                    "earlier ones", risk_settings.max_wait_s)
        _silent["warned"] = True
    _silent["symbols"] = silent
    state, judged = sequencer.judge_ready(state, pending, _history(), risk_settings, settings.broker, silent)
    for verdict, _order in judged:
        if "error" in verdict:
            log.error("risk: decision %s rejected: risk_core refused its inputs: %s", verdict["decision_id"],
                      verdict.pop("error"))
        await verdicts_topic.send(key=verdict["symbol"].encode(), value=verdict)
    if not judged:
        return
    account_to_risk[risk_settings.account] = state
    for decision_id in before - set(pending):
        del decision_to_pending[decision_id]
    point = sequencer.prune_point(state, pending)
    if point is not None:
        for symbol, ts_us in _history().prune(point, keep=RETURNS_WINDOW + 2):
            symbol_bar_to_prices.pop(f"{symbol}|{ts_us}", None)


@app.agent(bars_topic, name="risk_track_prices")
async def track_prices(stream):
    async for event in events_without_gaps(stream, AGENT):
        try:
            async with dead_letter_on_failure(event, AGENT):
                bar = await decode_bar_or_dead_letter(event, AGENT)
                if bar is None:
                    continue
                ts_us = to_micros(bar["ts"])
                async with _lock:
                    _history().add(bar["symbol"], ts_us, bar["open"], bar["close"])
                    symbol_bar_to_prices[f"{bar['symbol']}|{ts_us}"] = [float(bar["open"]), float(bar["close"])]
                    await judge_now()
        finally:
            _bars_read[event.message.partition] = event.message.offset + 1


@app.agent(decisions_topic, name="risk_judge_decisions")
async def take_decisions(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            decision = await decode_or_dead_letter(event, AGENT)
            if decision is None:
                continue
            async with _lock:
                state, pending = _state(), _pending()
                judged_us = state["judged"].get(decision["symbol"])
                if sequencer.is_judged(state, decision["decision_id"]) or decision["decision_id"] in pending:
                    log.info("risk: repeat of decision %s dropped: already judged", decision["decision_id"])
                    continue
                if judged_us is not None and to_micros(decision["ts"]) < judged_us:
                    log.warning("risk: decision %s on %s at %s dropped: older than the symbol's last judged decision "
                                "(a repeat after a restart, or published late)", decision["decision_id"],
                                decision["symbol"], decision["ts"])
                    continue
                entry = sequencer.pending_entry(decision)
                pending[decision["decision_id"]] = entry
                decision_to_pending[decision["decision_id"]] = entry
                await judge_now()


def _progress_client() -> StreamProgress:
    if _progress["client"] is None:
        _progress["client"] = StreamProgress(settings)
    return _progress["client"]


async def horizon_round() -> None:
    """Every bar before the pending decisions' times is known once the bar agent has processed the
    ticks published so far (a decision exists only after the tick that closed its bar, and ticks
    are published in time order) and this worker has read the bars that produced."""
    pending = _pending()
    if not pending:
        return
    target = max(d["ts_us"] for d in pending.values())
    unsettled = [key for key, d in pending.items() if not d.get("settled")]
    horizon = _state()["horizon_us"]
    if horizon is None or horizon < target:
        groups = await asyncio.to_thread(_progress_client().active_groups, groups_running(settings, BAR_AGENT_MODULE))
        if groups:
            await wait_drained(_progress_client(), "market.ticks", groups)
    elif not unsettled:
        return
    await wait_read_through(_progress_client(), "market.bars", app.conf.id, _bars_read)
    async with _lock:
        state = _state()
        if state["horizon_us"] is None or state["horizon_us"] < target:
            account_to_risk[risk_settings.account] = {**state, "horizon_us": target}
        for key in unsettled:  # every bar published before these decisions came has been read
            if key in pending:
                pending[key] = decision_to_pending[key] = {**pending[key], "settled": True}
        await judge_now()


@app.task
async def run_horizon_rounds() -> None:
    while True:
        try:
            await note_consensus_running()
            await horizon_round()
            if _pending() and silent_symbols() and not _silent["symbols"]:  # the consensus has just gone
                async with _lock:
                    await judge_now()
        except ServiceUnavailable as error:
            log.warning("risk: cannot check the bar agent's progress (%s); retrying", error)
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.02)


async def load_backtest_bars(request: dict) -> BarSeries | None:
    """The symbol's bars from market_data (BAR_INTERVAL), else from a bundled dataset."""
    start, end = request.get("start"), request.get("end")
    with postgres_errors():  # down: ServiceUnavailable, and the request waits for it
        async with await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=10) as conn:
            persisted = await read_bars_async(conn, [request["symbol"]], settings.bar_interval, start=start, end=end)
    if persisted:
        return persisted[0]
    for name in DATASETS:
        try:
            series = load_dataset(name, [request["symbol"]])[0]
        except DataError:
            continue
        keep = np.ones(len(series), dtype=bool)
        if start is not None:
            keep &= series.dates >= np.datetime64(start.replace(tzinfo=None), "us")
        if end is not None:
            keep &= series.dates <= np.datetime64(end.replace(tzinfo=None), "us")
        return BarSeries(series.symbol, series.dates[keep], series.open[keep], series.high[keep], series.low[keep],
                         series.close[keep], series.volume[keep])
    return None


@app.agent(requests_topic, name="risk_run_backtests")
async def run_backtests(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            request = await decode_or_dead_letter(event, AGENT)
            if request is None:
                continue
            result = await until_available(backtest_through_memory, memory, request,
                                           what=f"backtest {request['request_id']}")
            if result["error"]:
                log.info("backtest %s failed: %s", request["request_id"], result["error"])
            await results_topic.send(key=request["request_id"].encode(), value=result)


BACKTEST_PARAMETERS = ("symbol", "strategy", "params", "fee_bps", "slippage_bps", "initial_cash", "start", "end")


def backtest_key(request: dict) -> str:
    """backtest:<symbol>:<sha256 of the parameters and the bar interval>: the request id is not part of
    it, so a repeat of the same parameters is a hit."""
    parameters = {name: request.get(name) for name in BACKTEST_PARAMETERS}
    parameters["bar_interval"] = settings.bar_interval
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str).encode())
    return cache_key("backtest", request["symbol"].replace(":", "%3A"), digest.hexdigest())


async def backtest_through_memory(store: TieredStore, request: dict) -> dict:
    """The BacktestResult for `request`: from the tiered store when the same parameters ran less than
    MEMORY_BACKTEST_MAX_AGE_S ago (new bars may change an open-ended result), else loaded and run now.
    A failed run is answered but not cached. The result carries this request's id; its ts and
    elapsed_us are those of the run that computed it."""
    failed: list[dict] = []

    async def run() -> dict | None:
        bars = await load_backtest_bars(request)
        result = await asyncio.to_thread(backtest_result, request, bars)
        if result["error"]:
            failed.append(result)
            return None
        return result

    if not store.opened:
        await store.open()
    cached = await store.get_json(backtest_key(request), run, max_age_s=settings.memory.backtest_max_age_s)
    if cached is None:
        return failed[0] if failed else await run() or failed[0]
    return {**cached, "request_id": request["request_id"], "ts": datetime.fromisoformat(cached["ts"])}
