"""Risk agent: decisions -> RiskVerdicts through risk_core's pre-trade check; backtest requests ->
BacktestResults through risk_core's backtester; fills -> the paper portfolio.

State: `account_to_portfolio` (the paper book per account) and `symbol_to_market` (last close and
recent returns per symbol, from market.bars). The book is written from the fills and decisions
streams alike (use_partitioner), so run one risk worker per set of accounts: a single writer
keeps the checks sequential, which a veto needs anyway. Backtests run in a thread; the C++ engine
releases the GIL.
"""
from __future__ import annotations

import asyncio
import os

import numpy as np
import psycopg

from streams.app import app, avro_topic, decode_or_dead_letter, log, raw_topic, send_dead_letter, settings
from streams.market.datasets import BarSeries, DATASETS, load_dataset
from streams.errors import AlgoError, DataError
from streams.risk.rules import RiskSettings, apply_fill, backtest_result, judge, new_portfolio, update_market

AGENT = "risk"
risk_settings = RiskSettings.from_env(os.environ)

decisions_topic = raw_topic("consensus.decisions")
fills_topic = raw_topic("fills")
bars_topic = raw_topic("market.bars")
requests_topic = raw_topic("backtest.requests")
verdicts_topic = avro_topic("risk.verdicts")
results_topic = avro_topic("backtest.results")

# keyed by account but written from streams keyed by symbol: the partitioner places the key
account_to_portfolio = app.Table("account_to_portfolio", partitions=settings.topic_partitions, use_partitioner=True)
symbol_to_market = app.Table("symbol_to_market", partitions=settings.topic_partitions)


def _portfolio(account: str) -> dict:
    return account_to_portfolio.get(account) or new_portfolio(risk_settings)


def _markets() -> dict[str, dict]:
    return dict(symbol_to_market.items())


@app.agent(bars_topic, name="risk_track_prices")
async def track_prices(stream):
    async for event in stream.events():
        bar = await decode_or_dead_letter(event, AGENT)
        if bar is None or bar["interval"] != settings.bar_interval:
            continue
        symbol_to_market[bar["symbol"]] = update_market(symbol_to_market.get(bar["symbol"]), bar)


@app.agent(fills_topic, name="risk_apply_fills")
async def apply_fills(stream):
    async for event in stream.events():
        fill = await decode_or_dead_letter(event, AGENT)
        if fill is None:
            continue
        account_to_portfolio[fill["account"]] = apply_fill(_portfolio(fill["account"]), fill)


@app.agent(decisions_topic, name="risk_judge_decisions")
async def judge_decisions(stream):
    async for event in stream.events():
        decision = await decode_or_dead_letter(event, AGENT)
        if decision is None:
            continue
        try:
            state, verdict = judge(_portfolio(risk_settings.account), decision, _markets(), risk_settings)
        except AlgoError as error:  # risk_core refused the inputs: keep the message, go on
            await send_dead_letter(event, AGENT, error)
            continue
        account_to_portfolio[risk_settings.account] = state
        await verdicts_topic.send(key=decision["symbol"].encode(), value=verdict)


async def load_backtest_bars(request: dict) -> BarSeries | None:
    """The symbol's bars from market_data (BAR_INTERVAL), else from a bundled dataset."""
    query = ("SELECT ts, open, high, low, close, volume FROM market_data WHERE symbol = %s AND interval = %s"
             " AND (%s::timestamptz IS NULL OR ts >= %s) AND (%s::timestamptz IS NULL OR ts <= %s) ORDER BY ts")
    start, end = request.get("start"), request.get("end")
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        rows = await (await conn.execute(query, (request["symbol"], settings.bar_interval, start, start, end, end))).fetchall()
    if rows:
        columns = list(zip(*rows))
        dates = np.array([ts.replace(tzinfo=None) for ts in columns[0]], dtype="datetime64[us]")
        return BarSeries(request["symbol"], dates, *(np.array(c, dtype=np.float64) for c in columns[1:]))
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
        request = await decode_or_dead_letter(event, AGENT)
        if request is None:
            continue
        bars = await load_backtest_bars(request)
        result = await asyncio.to_thread(backtest_result, request, bars)
        if result["error"]:
            log.info("backtest %s failed: %s", request["request_id"], result["error"])
        await results_topic.send(key=request["request_id"].encode(), value=result)
