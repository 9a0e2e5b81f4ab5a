"""Paper broker: risk.verdicts -> orders; orders fill at the next bar's open -> fills; the book
(cash, positions, PnL, exposure) is kept in a table and persisted to Postgres accounts/positions.

A verdict that arrives after its symbol's recent-bars window has moved on (the risk agent lagging
a fast replay) still fills at the bar right after its decision, read from the vault (market_data);
it is dropped only when that bar is not there. A rejected verdict never becomes an order; a
resized one is ordered at its approved size. Every
fill carries its order id, every order its decision id, every decision its votes. The book is
keyed by account and written from streams keyed by symbol: run one broker worker.

After a crash Faust re-delivers what was not committed: ids are derived (streams.bus.ids), and a
verdict whose order is already open or filled, or a fill already in the book, is dropped, so a
decision gives at most one order and an order one fill. A message is sent before the table write
that records it, so a crash in between re-sends it with the same id (the sinks drop the copy).
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import psycopg

from streams.app import (app, avro_topic, dead_letter_on_failure, decode_bar_or_dead_letter, decode_or_dead_letter,
    events_without_gaps, log, raw_topic, settings)
from streams.errors import PersistenceError, ServiceUnavailable
from streams.market.bars import from_micros
from streams.outages import first_line, postgres_errors, until_available
from streams.broker.book import book_rows, mark, new_portfolio
from streams.broker.fills import (already_placed, book_fill, fill_bar, fill_record, is_stale,
                                  order_from_verdict, order_time_us, remember_bar)
from streams.market.store import read_bars_async

AGENT = "broker"
# a stale order's next bar is on market.bars already (the broker saw later bars); persistence may be
# behind, so the broker waits this long for it to reach the vault before giving the order up
VAULT_CATCH_UP_S = 300.0
broker_settings = settings.broker
verdicts_topic = raw_topic("risk.verdicts")
bars_topic = raw_topic("market.bars")
orders_topic = avro_topic("orders")
fills_topic = avro_topic("fills")

symbol_to_recent_bars = app.Table("symbol_to_recent_bars", partitions=settings.topic_partitions)
symbol_to_open_orders = app.Table("symbol_to_open_orders", partitions=settings.topic_partitions)
account_to_book = app.Table("account_to_book", partitions=settings.topic_partitions, use_partitioner=True)
_dirty = {"book": False}


def _book() -> dict:
    return account_to_book.get(broker_settings.account) or new_portfolio(broker_settings.account,
                                                                         broker_settings.initial_cash)


async def _fill(order: dict, bar: dict) -> None:
    fill = fill_record(order, bar, broker_settings)
    booked = book_fill(_book(), fill)
    if booked is None:
        log.info("broker: repeat of fill %s (order %s) dropped: already in the book", fill["fill_id"],
                 order["order_id"])
        return
    await fills_topic.send(key=order["symbol"].encode(), value=fill)
    recent = symbol_to_recent_bars.get(order["symbol"]) or []
    if recent:  # valued at the newest close, whichever came first, the fill or the later bars
        booked = mark(booked, order["symbol"], recent[-1]["close"])
    account_to_book[broker_settings.account] = booked
    _dirty["book"] = True


_vault: dict = {"conn": None}


async def next_bar_in_vault(order: dict) -> dict | None:
    """The first persisted bar after the order's time (ts_us, open, close), or None. While Postgres
    is down: ServiceUnavailable (the caller waits, the order is not dropped); PersistenceError when
    the database refuses the query."""
    try:
        with postgres_errors():
            if _vault["conn"] is None or _vault["conn"].closed:
                _vault["conn"] = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True,
                                                                       connect_timeout=10)
            after = await read_bars_async(_vault["conn"], [order["symbol"]], settings.bar_interval,
                                          after=from_micros(order_time_us(order)), limit_per_symbol=1)
    except (ServiceUnavailable, psycopg.Error) as error:
        conn, _vault["conn"] = _vault["conn"], None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
        if isinstance(error, ServiceUnavailable):
            raise
        raise PersistenceError(f"market_data lookup for a late order: {first_line(error)}") from error
    if not after:
        return None
    bar = after[0]
    return {"ts_us": int(bar.dates[0].astype("int64")), "open": float(bar.open[0]),  # dates are datetime64[us]
            "close": float(bar.close[0])}


async def next_bar_once_persisted(order: dict, catch_up_s: float = VAULT_CATCH_UP_S) -> dict | None:
    """The next bar of a stale order from the vault, waiting up to `catch_up_s` for persistence to store
    it (the bar stream already went past it: only a persistence behind the broker makes it missing)."""
    deadline = time.monotonic() + catch_up_s
    while True:
        bar = await until_available(next_bar_in_vault, order, what=f"broker: next bar for {order['symbol']}")
        if bar is not None or time.monotonic() >= deadline:
            return bar
        await asyncio.sleep(0.5)


@app.agent(verdicts_topic, name="broker_place_orders")
async def place_orders(stream):
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            verdict = await decode_or_dead_letter(event, AGENT)
            if verdict is None:
                continue
            order = order_from_verdict(verdict, broker_settings.account)
            if order is None:
                continue
            if already_placed(order, symbol_to_open_orders.get(order["symbol"]), _book()):
                log.info("broker: repeat of order %s (decision %s) dropped: already placed", order["order_id"],
                         order["decision_id"])
                continue
            recent = symbol_to_recent_bars.get(order["symbol"]) or []
            if is_stale(order, recent):
                bar = await next_bar_once_persisted(order)
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
    async for event in events_without_gaps(stream, AGENT):
        async with dead_letter_on_failure(event, AGENT):
            bar = await decode_bar_or_dead_letter(event, AGENT)
            if bar is None:
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
