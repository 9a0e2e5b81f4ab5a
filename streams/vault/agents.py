"""Persistence agents: bars, news, signals, decisions, verdicts, orders, fills and logs -> Postgres.

One agent per topic (streams.vault.rows.SINKS), each taking batches of events. A batch is written in one
transaction; if the database refuses it (a constraint), rows are retried one by one and only the
offending messages go to the dead-letter topic. Inserts are idempotent on natural keys. While Postgres
is down the batch waits (streams.outages) and is written once it is back.
"""
from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from streams.app import app, batches_without_gaps, decode_or_dead_letter, log, raw_topic, send_dead_letter, settings
from streams.errors import PersistenceError
from streams.outages import POSTGRES_DOWN, postgres_errors, until_available
from streams.vault.rows import SINKS, Sink, rows_or_errors

AGENT = "persistence"
_pool: AsyncConnectionPool | None = None


async def pool() -> AsyncConnectionPool:
    """The pool, opened without waiting: it connects in the background, also after Postgres restarts."""
    global _pool
    if _pool is None:
        # check: a connection broken by a restart is replaced when taken, not handed to a batch
        _pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=4, open=False, timeout=10,
                                    check=AsyncConnectionPool.check_connection)
        await _pool.open(wait=False)
    return _pool


async def write_batch(sink: Sink, rows: list[tuple]) -> list[tuple[int, Exception]]:
    """Writes rows; returns (index, error) for rows the database refused. Postgres being down (or
    going down midway) raises ServiceUnavailable: the whole batch is written again (idempotent)."""
    with postgres_errors():
        async with (await pool()).connection() as conn:
            try:
                async with conn.transaction():
                    async with conn.cursor() as cur:
                        await cur.executemany(sink.sql, rows)
                return []
            except POSTGRES_DOWN:
                raise
            except psycopg.DatabaseError as batch_error:
                log.info("%s: batch refused (%s); retrying row by row", sink.table, batch_error)
            refused = []
            for index, row in enumerate(rows):
                try:
                    async with conn.transaction():
                        await conn.execute(sink.sql, row)
                except POSTGRES_DOWN:
                    raise
                except psycopg.DatabaseError as error:  # a constraint, a value out of range: this row's fault
                    refused.append((index, PersistenceError(f"{sink.table}: {error.diag.message_primary or error}")))
            return refused


def _make_sink_agent(sink: Sink) -> None:
    @app.agent(raw_topic(sink.topic), name=f"persist_{sink.table}")
    async def persist(stream):
        async for events in batches_without_gaps(stream, settings.persist_batch_size, settings.persist_batch_window_s,
                                                 AGENT):
            decoded = []
            for event in events:
                record = await decode_or_dead_letter(event, AGENT)
                if record is not None:
                    decoded.append((event, record))
            rows, bad = rows_or_errors(sink, [record for _, record in decoded])
            for index, error in bad:
                await send_dead_letter(decoded[index][0], AGENT, error)
            refused = await until_available(write_batch, sink, [row for _, row in rows],
                                            what=f"persist_{sink.table}")
            for index, error in refused:
                await send_dead_letter(decoded[rows[index][0]][0], AGENT, error)


for _sink in SINKS:
    _make_sink_agent(_sink)
