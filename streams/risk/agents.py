"""Risk agent: decisions -> RiskVerdicts through risk_core's pre-trade check; backtest requests ->
BacktestResults through risk_core's backtester; fills -> the paper portfolio.

State: `account_to_portfolio` (the paper book per account) and `symbol_to_market` (last close and
recent returns per symbol, from market.bars). The book is written from the fills and decisions
streams alike (use_partitioner), so run one risk worker per set of accounts: a single writer
keeps the checks sequential, which a veto needs anyway. Backtests run in a thread; the C++ engine
releases the GIL.

After a crash Faust re-delivers what was not committed: the book remembers the decisions it has
judged and the fills it has applied (their derived ids, streams.bus.ids) and drops a repeat. A
verdict is sent before the book that records its decision is written, so a crash in between
judges the same book again and re-sends the same verdict (same id) instead of losing it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime

import numpy as np
import psycopg

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter, log,
                         raw_topic, send_dead_letter, settings)
from streams.market.datasets import BarSeries, DATASETS, load_dataset
from streams.market.store import read_bars_async
from streams.errors import AlgoError, DataError
from streams.outages import postgres_errors, until_available
from streams.broker.book import new_portfolio
from streams.broker.fills import book_fill
from streams.bus.ids import remember_id
from streams.memory.keys import cache_key
from streams.memory.store import AccessLog, TieredStore
from streams.risk.rules import backtest_result, judge, update_market

AGENT = "risk"
risk_settings = settings.risk

decisions_topic = raw_topic("consensus.decisions")
fills_topic = raw_topic("fills")
bars_topic = raw_topic("market.bars")
requests_topic = raw_topic("backtest.requests")
verdicts_topic = avro_topic("risk.verdicts")
results_topic = avro_topic("backtest.results")

# keyed by account but written from streams keyed by symbol: the partitioner places the key
account_to_portfolio = app.Table("account_to_portfolio", partitions=settings.topic_partitions, use_partitioner=True)
symbol_to_market = app.Table("symbol_to_market", partitions=settings.topic_partitions)
# the decisions and fills agents both read, change and write the book; judging awaits the verdict's
# send in between, so they take turns
_book_lock = asyncio.Lock()
DECISION_IDS = "decision_ids"  # the book's recently judged decisions
# backtest results are read through Redis: a repeat of the same parameters skips the C++ run
memory = TieredStore(settings, agent=AGENT, access_log=AccessLog(settings, AGENT))


def _portfolio(account: str) -> dict:
    return account_to_portfolio.get(account) or new_portfolio(account, risk_settings.initial_cash)


def _markets() -> dict[str, dict]:
    return dict(symbol_to_market.items())


@app.agent(bars_topic, name="risk_track_prices")
async def track_prices(stream):
    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
                continue
            symbol_to_market[bar["symbol"]] = update_market(symbol_to_market.get(bar["symbol"]), bar)


@app.agent(fills_topic, name="risk_apply_fills")
async def apply_fills(stream):
    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            fill = await decode_or_dead_letter(event, AGENT)
            if fill is None:
                continue
            async with _book_lock:
                booked = book_fill(_portfolio(fill["account"]), fill)
                if booked is None:
                    log.info("risk: repeat of fill %s (order %s) dropped: already in the book", fill["fill_id"],
                             fill["order_id"])
                    continue
                account_to_portfolio[fill["account"]] = booked


@app.agent(decisions_topic, name="risk_judge_decisions")
async def judge_decisions(stream):
    async for event in stream.events():
        async with dead_letter_on_failure(event, AGENT):
            decision = await decode_or_dead_letter(event, AGENT)
            if decision is None:
                continue
            async with _book_lock:
                book = remember_id(_portfolio(risk_settings.account), DECISION_IDS, decision["decision_id"])
                if book is None:
                    log.info("risk: repeat of decision %s dropped: already judged", decision["decision_id"])
                    continue
                try:
                    state, verdict = judge(book, decision, _markets(), risk_settings)
                except AlgoError as error:  # risk_core refused the inputs: keep the message, go on
                    await send_dead_letter(event, AGENT, error)
                    continue
                await verdicts_topic.send(key=decision["symbol"].encode(), value=verdict)
                account_to_portfolio[risk_settings.account] = state


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
    async for event in stream.events():
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
