"""The one reader of persisted bars (table market_data, sql/001_vault.sql) into BarSeries.

The broker's late-verdict fill (the first bar after a time), the risk agent's backtests (a date
range) and `algo quant train|evaluate --from-db` (every bar of some symbols) all read through
`bars_query` and `to_series`, so the columns, their types, the ordering and the validation of
persisted bars are written once. `read_bars` runs it on a psycopg connection, `read_bars_async`
on an async one.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

import pandas as pd

from streams.errors import DataError
from streams.market.datasets import OHLCV, BarSeries, frame_to_series, select_symbols

_SELECT = ("SELECT symbol, ts, open::float8, high::float8, low::float8, close::float8, volume::float8 "
           "FROM market_data WHERE interval = %s")


def bars_query(symbols: Iterable[str] | None, interval: str, *, start: datetime | None = None,
               end: datetime | None = None, after: datetime | None = None,
               limit_per_symbol: int | None = None) -> tuple[str, list]:
    """(SQL, parameters) for the bars of `symbols` (all when empty) at `interval`, oldest first;
    start/end are inclusive, after is exclusive. limit_per_symbol keeps each symbol's first N bars."""
    query, params = _SELECT, [interval]
    wanted = list(symbols or [])
    if wanted:
        query += " AND symbol = ANY(%s)"
        params.append(wanted)
    for bound, operator in ((start, ">="), (end, "<="), (after, ">")):
        if bound is not None:
            query += f" AND ts {operator} %s"
            params.append(bound)
    if limit_per_symbol is not None:
        query = (f"SELECT symbol, ts, open, high, low, close, volume FROM (SELECT *, row_number() OVER "
                 f"(PARTITION BY symbol ORDER BY ts) AS n FROM ({query}) AS b) AS ranked WHERE n <= %s")
        params.append(int(limit_per_symbol))
    return query + " ORDER BY symbol, ts", params


def to_series(rows: list[tuple], origin: str = "market_data") -> list[BarSeries]:
    """Rows of bars_query as one BarSeries per symbol (sorted by symbol), validated like a CSV."""
    if not rows:
        return []
    frame = pd.DataFrame(rows, columns=["symbol", "date", *OHLCV])
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    return [frame_to_series(group, str(name), origin) for name, group in frame.groupby("symbol", sort=True)]


def read_bars(conn, symbols: Iterable[str] | None, interval: str, **bounds) -> list[BarSeries]:
    """Persisted bars through a psycopg Connection (see bars_query for the bounds)."""
    query, params = bars_query(symbols, interval, **bounds)
    return to_series(conn.execute(query, params).fetchall())


async def read_bars_async(conn, symbols: Iterable[str] | None, interval: str, **bounds) -> list[BarSeries]:
    """Persisted bars through a psycopg AsyncConnection (see bars_query for the bounds)."""
    query, params = bars_query(symbols, interval, **bounds)
    cursor = await conn.execute(query, params)
    return to_series(await cursor.fetchall())


def load_market_data(database_url: str, symbols: list[str] | None, interval: str) -> list[BarSeries]:
    """Every persisted bar of `symbols` (all when empty) at `interval`; DataError with what to do
    when Postgres cannot be read or has none."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            series = read_bars(conn, [s.upper() for s in symbols or []], interval)
    except psycopg.Error as error:
        raise DataError(f"cannot read market_data from Postgres ({error}); run `algo stack up` and `algo provision`")
    if not series:
        wanted = f" for {', '.join(symbols)}" if symbols else ""
        raise DataError(f"market_data has no {interval} bars{wanted}; replay some data first (`algo demo` or "
                        "`algo replay` with the bars and persistence workers running)")
    return select_symbols(series, symbols, "market_data")
