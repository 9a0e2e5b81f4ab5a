"""Paper broker: risk.verdicts -> orders; orders fill at the next bar's open -> fills; the book
(cash, positions, PnL, exposure) is kept in a table and persisted to Postgres accounts/positions.

A verdict that arrives after its symbol's recent-bars window has moved on (the risk agent lagging
a fast replay) still fills at the bar right after its decision, read from the vault (market_data);
it is dropped only when that bar is not there. A rejected verdict never becomes an order; a
resized one is ordered at its approved size. Every
fill carries its order id, every order its decision id, every decision its votes. The book is
keyed by account and written from streams keyed by symbol: run one broker worker.
"""
from __future__ import annotations

import os

import psycopg

from streams.app import app, avro_topic, decode_or_dead_letter, log, raw_topic, settings
from streams.market.bars import from_micros, to_micros
from streams.broker.fills import (BrokerSettings, book_rows, fill_bar, fill_record, is_stale, mark, order_from_verdict,
                            order_time_us, remember_bar)
from streams.risk.rules import RiskSettings, apply_fill, new_portfolio

AGENT = "broker"
broker_settings = BrokerSettings.from_env(os.environ)
risk_settings = RiskSettings.from_env(os.environ)
verdicts_topic = raw_topic("risk.verdicts")
bars_topic = raw_topic("market.bars")
orders_topic = avro_topic("orders")
fills_topic = avro_topic("fills")

symbol_to_recent_bars = app.Table("symbol_to_recent_bars", partitions=settings.topic_partitions)
symbol_to_open_orders = app.Table("symbol_to_open_orders", partitions=settings.topic_partitions)
account_to_book = app.Table("account_to_book", partitions=settings.topic_partitions, use_partitioner=True)
_dirty = {"book": False}


def _book() -> dict:
    return account_to_book.get(broker_settings.account) or new_portfolio(risk_settings)


async def _fill(order: dict, bar: dict) -> None:
    fill = fill_record(order, bar, broker_settings)
    await fills_topic.send(key=order["symbol"].encode(), value=fill)
    account_to_book[broker_settings.account] = apply_fill(_book(), fill)
    _dirty["book"] = True


_vault: dict = {"conn": None}


async def next_bar_in_vault(order: dict) -> dict | None:
    """The first persisted bar after the order's time (ts_us, open, close), or None."""
    try:
        if _vault["conn"] is None or _vault["conn"].closed:
            _vault["conn"] = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
        cursor = await _vault["conn"].execute(
            "SELECT ts, open::float8, close::float8 FROM market_data WHERE symbol = %s AND interval = %s AND ts > %s "
            "ORDER BY ts LIMIT 1", (order["symbol"], settings.bar_interval, from_micros(order_time_us(order))))
        row = await cursor.fetchone()
    except psycopg.Error as error:
        log.warning("vault lookup for a late order failed: %s", error)
        _vault["conn"] = None
        return None
    return None if row is None else {"ts_us": to_micros(row[0]), "open": row[1], "close": row[2]}


@app.agent(verdicts_topic, name="broker_place_orders")
async def place_orders(stream):
    async for event in stream.events():
        verdict = await decode_or_dead_letter(event, AGENT)
        if verdict is None:
            continue
        order = order_from_verdict(verdict, broker_settings.account)
        if order is None:
            continue
        recent = symbol_to_recent_bars.get(order["symbol"]) or []
        if is_stale(order, recent):
            bar = await next_bar_in_vault(order)
            if bar is None:  # never fill at a price from long after the decision
                log.warning("verdict %s for %s at %s is too old to execute and its next bar is not in the vault; "
                            "no order placed", verdict["verdict_id"], order["symbol"], order["ts"])
                continue
        else:
            bar = fill_bar(order, recent)
        await orders_topic.send(key=order["symbol"].encode(), value=order)
        if bar is not None:  # the next bar is already known (a replay runs ahead of the verdicts)
            await _fill(order, bar)
        else:
            symbol_to_open_orders[order["symbol"]] = (symbol_to_open_orders.get(order["symbol"]) or []) + [order]


@app.agent(bars_topic, name="broker_fill_orders")
async def fill_orders(stream):
    async for event in stream.events():
        bar = await decode_or_dead_letter(event, AGENT)
        if bar is None or bar["interval"] != settings.bar_interval:
            continue
        symbol = bar["symbol"]
        recent = remember_bar(symbol_to_recent_bars.get(symbol), bar)
        symbol_to_recent_bars[symbol] = recent
        still_open = []
        for order in symbol_to_open_orders.get(symbol) or []:
            if order["account"] != broker_settings.account:  # left by a run for another account: not ours to fill
                continue
            fill_at = fill_bar(order, recent)
            if fill_at is None:
                still_open.append(order)
            else:
                await _fill(order, fill_at)
        if symbol_to_open_orders.get(symbol):
            symbol_to_open_orders[symbol] = still_open
        book = _book()
        if symbol in book["positions"]:
            account_to_book[broker_settings.account] = mark(book, symbol, bar["close"])
            _dirty["book"] = True


@app.timer(interval=1.0)
async def persist_book() -> None:
    if not _dirty["book"]:
        return
    _dirty["book"] = False
    account, positions = book_rows(_book())
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO accounts (account, cash, equity, realised_pnl, unrealised_pnl, fees, gross_exposure,
                       net_exposure) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (account) DO UPDATE SET
                       cash = EXCLUDED.cash, equity = EXCLUDED.equity, realised_pnl = EXCLUDED.realised_pnl,
                       unrealised_pnl = EXCLUDED.unrealised_pnl, fees = EXCLUDED.fees,
                       gross_exposure = EXCLUDED.gross_exposure, net_exposure = EXCLUDED.net_exposure,
                       updated_at = now()""", account)
                await conn.execute("DELETE FROM positions WHERE account = %s AND NOT (symbol = ANY(%s))",
                                   (account[0], [p[1] for p in positions]))
                for row in positions:
                    await conn.execute(
                        """INSERT INTO positions (account, symbol, quantity, avg_price, last_price, unrealised_pnl)
                           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (account, symbol) DO UPDATE SET
                           quantity = EXCLUDED.quantity, avg_price = EXCLUDED.avg_price,
                           last_price = EXCLUDED.last_price, unrealised_pnl = EXCLUDED.unrealised_pnl,
                           updated_at = now()""", row)
    except psycopg.Error as error:
        _dirty["book"] = True
        log.warning("book not persisted (will retry): %s", error)
