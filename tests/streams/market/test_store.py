"""streams.market.store: the one reader of market_data rows into bars, used by the broker's late
fills, the risk agent's backtests and `algo quant ... --from-db`."""
import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest

from streams.errors import DataError
from streams.market.store import bars_query, load_market_data, read_bars

DAY0 = datetime(2003, 3, 3, tzinfo=timezone.utc)


def test_bars_query_bounds_and_per_symbol_limit():
    query, params = bars_query(["A", "B"], "1h", start=DAY0, after=DAY0, limit_per_symbol=2)
    assert params == ["1h", ["A", "B"], DAY0, DAY0, 2]
    assert "ts >= %s" in query and "ts > %s" in query and "row_number()" in query
    assert query.endswith("ORDER BY symbol, ts")
    query, params = bars_query(None, "1d")
    assert params == ["1d"] and "symbol = ANY" not in query


@pytest.fixture
def stored_bars(provisioned):
    """Five daily bars of a symbol only this test writes (closes 10, 11, ... 14), removed after."""
    symbol = f"ST{uuid.uuid4().hex[:6].upper()}"
    rows = [(symbol, "1d", DAY0 + timedelta(days=i), 10 + i, 11 + i, 9 + i, 10 + i, 100 * (i + 1), 1) for i in range(5)]
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume, tick_count) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    yield provisioned, symbol
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM market_data WHERE symbol = %s", (symbol,))


@pytest.mark.integration
def test_read_bars_with_bounds(stored_bars):
    settings, symbol = stored_bars
    with psycopg.connect(settings.database_url) as conn:
        [every] = read_bars(conn, [symbol], "1d")
        [ranged] = read_bars(conn, [symbol], "1d", start=DAY0 + timedelta(days=1), end=DAY0 + timedelta(days=3))
        [first_after] = read_bars(conn, [symbol], "1d", after=DAY0 + timedelta(days=2), limit_per_symbol=1)
        assert read_bars(conn, [symbol], "1h") == []
    assert every.symbol == symbol and list(every.close) == [10, 11, 12, 13, 14] and every.volume.dtype == np.float64
    assert list(ranged.close) == [11, 12, 13]
    assert list(first_after.open) == [13] and first_after.dates[0] == np.datetime64("2003-03-06T00:00", "us")


@pytest.mark.integration
def test_quant_risk_and_broker_read_the_same_bars(stored_bars):
    import streams.broker.agents as broker
    import streams.risk.agents as risk

    settings, symbol = stored_bars
    [quant] = load_market_data(settings.database_url, [symbol.lower()], "1d")
    backtest = asyncio.run(risk.load_backtest_bars({"symbol": symbol, "start": DAY0 + timedelta(days=1), "end": None}))
    order = {"symbol": symbol, "ts": DAY0 + timedelta(days=2, hours=15)}

    async def late_fill():
        try:
            return await broker.next_bar_in_vault(order)
        finally:
            if broker._vault["conn"] is not None:
                await broker._vault["conn"].close()
                broker._vault["conn"] = None

    bar = asyncio.run(late_fill())
    assert list(quant.close) == [10, 11, 12, 13, 14] and list(backtest.close) == [11, 12, 13, 14]
    assert np.array_equal(quant.dates[1:], backtest.dates) and np.array_equal(quant.high[1:], backtest.high)
    assert bar == {"ts_us": int(quant.dates[3].astype("int64")), "open": 13.0, "close": 13.0}
    with pytest.raises(DataError, match="no 1d bars for NOSUCH"):
        load_market_data(settings.database_url, ["NOSUCH"], "1d")
