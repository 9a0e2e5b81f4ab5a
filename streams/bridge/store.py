"""What the bridge reads: recent rows from the Postgres vault and consumer lag from Kafka.

Reads go through a small psycopg 3 async pool; numbers come back as JSON numbers (NUMERIC columns
as floats), timestamps as ISO 8601. `StoreUnavailable` means a dependency did not answer (503).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from streams.errors import AlgoError, ServiceUnavailable
from streams.memory import keys
from streams.memory.store import AccessLog, TieredStore
from streams.settings import Settings

log = logging.getLogger("algo.bridge.store")


class StoreUnavailable(AlgoError):
    """Postgres (or Kafka, for lag) could not be reached."""


def json_row(row: dict) -> dict:
    return {k: _json_value(v) for k, v in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


DECISIONS_SQL = """
SELECT d.decision_id, d.symbol, d.ts, d.action, d.target_position, d.agreement, d.votes, d.rationale,
       v.verdict, v.approved_quantity, v.reason_codes
FROM decisions d
LEFT JOIN LATERAL (
    SELECT r.verdict, r.approved_quantity, r.reason_codes FROM risk_verdicts r
    WHERE r.decision_id = d.decision_id ORDER BY r.ts DESC LIMIT 1
) v ON true
WHERE (%(symbol)s::text IS NULL OR d.symbol = %(symbol)s)
ORDER BY d.ts DESC, d.decision_id DESC
LIMIT %(limit)s
"""

BARS_SQL = """
SELECT symbol, interval, ts, open, high, low, close, volume FROM (
    SELECT symbol, interval, ts, open, high, low, close, volume FROM market_data
    WHERE interval = %(interval)s AND (%(symbol)s::text IS NULL OR symbol = %(symbol)s)
    ORDER BY ts DESC, symbol LIMIT %(limit)s
) recent ORDER BY ts, symbol
"""

POSITIONS_SQL = """
SELECT account, symbol, quantity, avg_price, last_price, unrealised_pnl, realised_pnl, updated_at
FROM positions WHERE (%(account)s::text IS NULL OR account = %(account)s) ORDER BY account, symbol
"""

ACCOUNTS_SQL = """
SELECT account, cash, equity, realised_pnl, unrealised_pnl, fees, gross_exposure, net_exposure, updated_at
FROM accounts WHERE (%(account)s::text IS NULL OR account = %(account)s) ORDER BY account
"""

FILLS_SQL = """
SELECT fill_id, order_id, account, symbol, ts, side, quantity, price, fee FROM fills
WHERE (%(symbol)s::text IS NULL OR symbol = %(symbol)s) AND (%(account)s::text IS NULL OR account = %(account)s)
ORDER BY ts DESC, fill_id DESC LIMIT %(limit)s
"""

AGENTS_SQL = """
WITH seen AS (SELECT agent, max(ts) AS last_signal_ts, count(*) AS signal_rows FROM signals GROUP BY agent)
SELECT coalesce(s.agent, seen.agent) AS agent, s.configured_weight, s.hit_rate,
       coalesce(s.scored_calls, 0) AS scored_calls, coalesce(s.signals, 0) AS signals, s.last_signal_at,
       s.updated_at, seen.last_signal_ts, coalesce(seen.signal_rows, 0) AS signal_rows
FROM agent_stats s FULL OUTER JOIN seen ON seen.agent = s.agent
ORDER BY 1
"""

# News for the charts: an item belongs to a symbol it declares, or one an analyst vote citing it
# (input_refs `news:<id>`) was about: feed items declare none and the analyst resolves them.
CITED_SYMBOLS = """
SELECT substr(ref, 6) AS news_id, array_agg(DISTINCT s.symbol) AS symbols
FROM signals s, unnest(s.input_refs) AS ref
WHERE s.agent = 'analyst' AND ref LIKE 'news:%%'
GROUP BY 1
"""

NEWS_SQL = f"""
WITH cited AS ({CITED_SYMBOLS})
SELECT n.id, n.ts, n.source, n.headline, n.body, n.url,
       ARRAY(SELECT DISTINCT x FROM unnest(n.symbols || coalesce(c.symbols, '{{}}')) AS x ORDER BY x) AS symbols
FROM news n LEFT JOIN cited c ON c.news_id = n.id
WHERE (%(since)s::timestamptz IS NULL OR n.ts >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR n.ts <= %(until)s)
  AND (%(symbol)s::text IS NULL OR %(symbol)s = ANY(n.symbols) OR %(symbol)s = ANY(c.symbols))
ORDER BY n.ts DESC, n.id DESC
LIMIT %(limit)s
"""

# The analyst's votes with the headlines they cite, in the order of input_refs (the new item first);
# a cited id not in the vault (yet) still comes back, with a null headline.
ANALYST_VOTES_SQL = """
SELECT s.signal_id, s.symbol, s.ts, s.action, s.confidence, s.rationale, s.model_version,
       coalesce((
           SELECT json_agg(json_build_object('id', substr(r.ref, 6), 'ts', n.ts, 'source', n.source,
                                             'headline', n.headline, 'url', n.url) ORDER BY r.ord)
           FROM unnest(s.input_refs) WITH ORDINALITY AS r(ref, ord)
           LEFT JOIN news n ON n.id = substr(r.ref, 6)
           WHERE r.ref LIKE 'news:%%'), '[]'::json) AS cited
FROM signals s
WHERE s.agent = 'analyst' AND (%(symbol)s::text IS NULL OR s.symbol = %(symbol)s)
ORDER BY s.ts DESC, s.signal_id DESC
LIMIT %(limit)s
"""


class Store:
    def __init__(self, settings: Settings, *, pool_timeout_s: float = 5.0, lag_cache_s: float = 5.0) -> None:
        self.settings = settings
        self.pool_timeout_s = pool_timeout_s
        self.lag_cache_s = lag_cache_s
        self._pool = None
        self._admin = None
        self._lag: tuple[float, list[dict]] | None = None
        self._lag_lock = asyncio.Lock()
        self.memory: TieredStore | None = None  # the polled reads go through Redis (streams.memory)

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            self.settings.database_url, min_size=1, max_size=4, open=False, timeout=self.pool_timeout_s,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5},
            name="bridge", reconnect_timeout=0)
        await self._pool.open(wait=False)
        self.memory = await TieredStore(self.settings, agent="bridge",
                                        access_log=AccessLog(self.settings, "bridge")).open()

    async def close(self) -> None:
        memory, self.memory = self.memory, None
        if memory is not None:
            await memory.close()
        if self._pool is not None:
            await self._pool.close()
        self._admin = None  # an AdminClient has no close(): dropping the last reference destroys it

    async def query(self, sql: str, params: dict | None = None) -> list[dict]:
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._pool is None:
            raise StoreUnavailable("the database pool is not open")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(sql, params or {})
                return [json_row(row) for row in await cursor.fetchall()]
        except PoolTimeout:
            raise StoreUnavailable(f"Postgres did not answer within {self.pool_timeout_s:.0f} s") from None
        except psycopg.errors.UndefinedTable as error:
            raise StoreUnavailable(f"{error.diag.message_primary}; run `algo provision`") from None
        except psycopg.OperationalError as error:
            raise StoreUnavailable(f"Postgres: {str(error).strip().splitlines()[0]}") from None

    async def cached_query(self, key: str, sql: str, params: dict) -> list[dict]:
        """query() through the tiered store: the dashboard polls the same reads, so a result at most
        MEMORY_BRIDGE_MAX_AGE_S old is answered from Redis."""
        if self.memory is None:
            return await self.query(sql, params)
        try:
            return await self.memory.get_json(key, lambda: self.query(sql, params),
                                              max_age_s=self.settings.memory.bridge_max_age_s)
        except ServiceUnavailable as error:
            raise StoreUnavailable(str(error)) from None

    async def ping(self) -> None:
        await self.query("SELECT 1 AS ok")

    async def decisions(self, symbol: str | None, limit: int) -> list[dict]:
        return await self.cached_query(keys.cache_key("decisions", _key_part(symbol), limit), DECISIONS_SQL,
                                       {"symbol": symbol, "limit": limit})

    async def bars(self, symbol: str | None, interval: str, limit: int) -> list[dict]:
        return await self.cached_query(keys.cache_key("bars", _key_part(symbol), _key_part(interval), limit), BARS_SQL,
                                       {"symbol": symbol, "interval": interval, "limit": limit})

    async def positions(self, account: str | None) -> list[dict]:
        return await self.cached_query(keys.cache_key("positions", _key_part(account)), POSITIONS_SQL,
                                       {"account": account})

    async def accounts(self, account: str | None) -> list[dict]:
        return await self.query(ACCOUNTS_SQL, {"account": account})

    async def fills(self, symbol: str | None, account: str | None, limit: int) -> list[dict]:
        return await self.query(FILLS_SQL, {"symbol": symbol, "account": account, "limit": limit})

    async def agents(self) -> list[dict]:
        return await self.query(AGENTS_SQL)

    async def news(self, symbol: str | None, since, until, limit: int) -> list[dict]:
        return await self.query(NEWS_SQL, {"symbol": symbol, "since": since, "until": until, "limit": limit})

    async def analyst_votes(self, symbol: str | None, limit: int) -> list[dict]:
        return await self.query(ANALYST_VOTES_SQL, {"symbol": symbol, "limit": limit})

    # --- Kafka: consumer lag of the agents' groups --------------------------------------------------------

    async def consumer_lag(self) -> list[dict]:
        """Lag per Faust consumer group of this deployment (`<app id>-<worker>`), cached a few seconds."""
        async with self._lag_lock:
            if self._lag is not None and time.monotonic() - self._lag[0] < self.lag_cache_s:
                return self._lag[1]
            try:
                groups = await asyncio.wait_for(asyncio.to_thread(self._compute_lag), 15)
            except asyncio.TimeoutError:
                raise StoreUnavailable("Kafka did not answer the lag query within 15 s") from None
            except StoreUnavailable:
                raise
            except Exception as error:
                raise StoreUnavailable(f"Kafka: {error}") from None
            self._lag = (time.monotonic(), groups)
            return groups

    def admin(self):
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient(self.settings.kafka_config({"log_level": 3}))
        return self._admin

    def kafka_ping(self, timeout: float = 3.0) -> int:
        """Number of brokers; raises when the cluster does not answer."""
        metadata = self.admin().list_topics(timeout=timeout)
        return len(metadata.brokers)

    def _compute_lag(self) -> list[dict]:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
        from confluent_kafka.admin import OffsetSpec

        from streams.workers import WORKERS  # the agents' names: their Faust groups are <app id>-<name>

        admin = self.admin()
        prefix = f"{self.settings.app_id}-"
        listing = admin.list_consumer_groups(request_timeout=5).result(timeout=10)
        groups = sorted((g for g in listing.valid
                         if g.group_id.startswith(prefix) and g.group_id[len(prefix):] in WORKERS),
                        key=lambda g: g.group_id)
        out = []
        for group in groups:
            committed = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group.group_id)], request_timeout=5)[group.group_id].result(timeout=10)
            partitions = [tp for tp in committed.topic_partitions or [] if tp.offset >= 0 and tp.error is None]
            if not partitions:  # `algo tail` and other transient readers commit nothing
                continue
            futures = admin.list_offsets({TopicPartition(tp.topic, tp.partition): OffsetSpec.latest()
                                          for tp in partitions}, request_timeout=5)
            ends = {(tp.topic, tp.partition): f.result(timeout=10).offset for tp, f in futures.items()}
            topics: dict[str, int] = {}
            for tp in partitions:
                lag = max(0, ends.get((tp.topic, tp.partition), tp.offset) - tp.offset)
                topics[tp.topic] = topics.get(tp.topic, 0) + lag
            out.append({"group": group.group_id, "agent": group.group_id[len(prefix):],
                        "state": _state_name(group.state), "lag": sum(topics.values()), "topics": topics,
                        "committed": sum(tp.offset for tp in partitions)})
        return out


def _key_part(value: str | None) -> str:
    """A query argument as a cache key part: '*' for all, else quoted (no ':' inside a part)."""
    return "*" if value is None else quote(value, safe="") or "%00"


def _state_name(state) -> str:
    name = getattr(state, "name", None) or str(state)
    return name.rsplit(".", 1)[-1].lower()
