"""The Analyst's memory of news in Postgres (pgvector): store embeddings, retrieve similar items AS OF a
moment.

As of `before`: only items published strictly before it (an item published at the same microsecond
is not yet known), never the excluded ids (the item being voted on), optionally only items sharing a
symbol and no older than `before - window`. Ties in distance are broken by id, so the same data
gives the same ids in the same order.

Two plans, one answer shape:
- exact: the filtered rows are scored in full (btree on ts, GIN on symbols) and sorted by
  (distance, id). Cost grows with the rows that pass the filter.
- hnsw: the HNSW index (sql/006_news_memory.sql) with `hnsw.iterative_scan = relaxed_order`, so a
  filter that rejects most of what the graph visits makes the scan go on instead of returning fewer
  than k rows (pgvector applies WHERE after the index scan), and a tuned `hnsw.ef_search`. The
  results are re-sorted by (distance, id) in a materialised CTE (relaxed order may be slightly off).
  Postgres may still answer it by btree + sort when it judges the filter selective: exact, then.
- auto (the default): count the rows passing the filter, stopping at EXACT_MAX_ROWS + 1 (a bounded,
  deterministic count, not the planner's estimate, which moves with ANALYZE); at most EXACT_MAX_ROWS
  -> exact, else hnsw. The figures behind both constants are below.

Figures (benchmarks/retrieval.py: 100,000 clustered MiniLM-derived items over 14 years, 8 symbols,
k = 10, 200 queries a cell, client wall time on the 2 shared cores; tuned on one query set, reported
on another; benchmarks/results/retrieval.json has every cell):
- tuning, wide filter (~89% pass), hnsw recall@10 by ef_search: 40 0.961, 64 0.970, 100 0.995,
  150 0.995, 200 0.995 -> EF_SEARCH 100, the smallest with recall >= 0.98 + 0.01 margin.
- tuning, time windows, exact vs hnsw(100): 1% (980 rows) exact p50 ~3 ms, hnsw recall 0.972;
  4% (3,990) exact p99 23 ms, hnsw 32 ms at recall 0.948; 16% (15,970) exact p99 63 ms, hnsw 14 ms
  but recall 0.968; 32% (31,640) hnsw 17 ms at recall 0.993. Filtered HNSW misses neighbours until
  about a third of the rows pass, so exact wins up to the 16% point -> EXACT_MAX_ROWS 16,000.
- reported (other queries), the auto rule: wide recall 0.984, p50 5.2 ms, p99 7.9 ms (hnsw; the
  bounded count is ~2.5 ms of it); one-month window (0.6% pass) recall 1.0, p99 5.0 ms (exact);
  one symbol (0.75% pass) recall 1.0, p99 4.0 ms (exact). Exact on the wide filter: p99 125 ms.
- Between ~2% and ~16% passing, exact is right but slower than the 10 ms goal (10-63 ms p99).
The shipped corpus (a few hundred items) is always below the threshold: it is always scanned exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import psycopg
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from psycopg import sql
from pydantic import ConfigDict, Field

from streams.analyst.embeddings import DIMENSIONS, news_text
from streams.errors import AlgoError

NEWS_TABLE = "news"
PLANS = ("auto", "exact", "hnsw")
# Tuned by benchmarks/retrieval.py (the figures are in the module docstring).
EF_SEARCH = 100
EXACT_MAX_ROWS = 16_000
MAX_K = 1_000

class NewsMemoryError(AlgoError):
    """A news memory request is malformed (a naive time, a wrong-sized vector, k out of range)."""


@dataclass(frozen=True)
class RetrievedNews:
    """One earlier item, with its cosine similarity to the query (1 - cosine distance)."""
    id: str
    ts: datetime
    headline: str
    body: str
    symbols: tuple[str, ...]
    similarity: float


@dataclass(frozen=True)
class Retrieval:
    """The items (most similar first, ties by id), the plan that found them and the rows counted
    passing the filter (capped at EXACT_MAX_ROWS + 1; None when the plan was forced)."""
    items: tuple[RetrievedNews, ...]
    plan: str
    passing: int | None

    def __iter__(self) -> Iterator[RetrievedNews]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]


def connect(database_url: str) -> psycopg.Connection:
    """An autocommit connection with pgvector's types registered (numpy arrays <-> vector)."""
    from pgvector.psycopg import register_vector

    from streams.outages import postgres_errors

    with postgres_errors():
        conn = psycopg.connect(database_url, autocommit=True, connect_timeout=10)
        register_vector(conn)
    return conn


def _vector(values: Any, what: str) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    if vector.shape != (DIMENSIONS,):
        raise NewsMemoryError(f"{what} has shape {vector.shape}; the news memory holds {DIMENSIONS}-d vectors")
    if not np.all(np.isfinite(vector)) or not np.any(vector):
        raise NewsMemoryError(f"{what} must be finite and non-zero (cosine distance is undefined otherwise)")
    return vector


def _aware(moment: Any, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise NewsMemoryError(f"{what} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NewsMemoryError(f"{what} {moment.isoformat()} has no time zone; give an aware (UTC) time")
    return moment


def _table(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def store(conn: psycopg.Connection, items: Sequence[dict], embeddings: Any, *, table: str = NEWS_TABLE) -> int:
    """Upserts NewsItem records (id, ts, source, headline, body, symbols, url) with their embeddings.
    A row that exists keeps its columns; its embedding is written only where it was NULL (the
    persistence agent inserts news without one), together with the union of both symbol lists. Returns how many rows got an embedding now: 0 on a
    second call with the same items."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if len(items) == 0:
        return 0
    if vectors.ndim != 2 or vectors.shape != (len(items), DIMENSIONS):
        raise NewsMemoryError(f"{len(items)} items need a ({len(items)}, {DIMENSIONS}) embedding array, "
                              f"not {vectors.shape}")
    rows = []
    for index, item in enumerate(items):
        missing = [c for c in ("id", "ts", "source", "headline") if not item.get(c)]
        if missing:
            raise NewsMemoryError(f"news item {index} lacks {', '.join(missing)}")
        _aware(item["ts"], f"news item {item['id']!r} ts")
        rows.append((item["id"], item["ts"], item["source"], item["headline"], item.get("body") or "",
                     list(item.get("symbols") or ()), item.get("url"),
                     _vector(vectors[index], f"the embedding of news item {item['id']!r}")))
    query = sql.SQL(
        "INSERT INTO {t} AS n (id, ts, source, headline, body, symbols, url, embedding) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        # the analyst stores the symbols it resolved from the text (a feed item declares none), so the
        # per-symbol retrieval finds the item; a row the persistence agent wrote first gets them too
        "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, "
        "symbols = ARRAY(SELECT DISTINCT s FROM unnest(n.symbols || EXCLUDED.symbols) s ORDER BY s) "
        "WHERE n.embedding IS NULL "
        "RETURNING n.id").format(t=_table(table))
    written = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(query, rows, returning=True)
        while True:
            written += len(cur.fetchall())
            if not cur.nextset():
                break
    return written


def embedded_ids(conn: psycopg.Connection, ids: Iterable[str], *, table: str = NEWS_TABLE) -> set[str]:
    """Those of `ids` whose row already has an embedding."""
    ids = list(ids)
    if not ids:
        return set()
    query = sql.SQL("SELECT id FROM {t} WHERE id = ANY(%s) AND embedding IS NOT NULL").format(t=_table(table))
    return {row[0] for row in conn.execute(query, (ids,))}


@dataclass(frozen=True)
class BackfillReport:
    total: int  # items in the corpus
    embedded: int  # rows that got their embedding now
    skipped: int  # rows that already had one


def backfill(conn: psycopg.Connection, items: Sequence[dict], *, batch: int = 64, progress: bool = True,
             table: str = NEWS_TABLE) -> BackfillReport:
    """Embeds (news_text) and stores the items whose row has no embedding yet, `batch` at a time, with
    a progress bar. Idempotent: a second run over the same items embeds nothing."""
    from tqdm import tqdm

    from streams.analyst.embeddings import embed

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise NewsMemoryError(f"batch must be a positive integer, not {batch!r}")
    done = embedded_ids(conn, (item["id"] for item in items), table=table)
    todo = [item for item in items if item["id"] not in done]
    embedded = 0
    with tqdm(total=len(todo), desc="embedding news", unit="item", disable=not progress or not todo) as bar:
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            embedded += store(conn, chunk, embed([news_text(item) for item in chunk]), table=table)
            bar.update(len(chunk))
    return BackfillReport(total=len(items), embedded=embedded, skipped=len(items) - len(todo))


def _filters(before: datetime, symbols: Sequence[str] | None, exclude_ids: Sequence[str],
             window: timedelta | None, embedded_only: bool = True) -> tuple[sql.Composable, dict]:
    clauses = [sql.SQL("embedding IS NOT NULL")] if embedded_only else []
    clauses.append(sql.SQL("ts < %(before)s"))
    params: dict[str, Any] = {"before": before}
    if window is not None:
        clauses.append(sql.SQL("ts >= %(after)s"))
        params["after"] = before - window
    if symbols:
        clauses.append(sql.SQL("symbols && %(symbols)s::text[]"))
        params["symbols"] = list(symbols)
    if exclude_ids:
        clauses.append(sql.SQL("id <> ALL(%(exclude)s::text[])"))
        params["exclude"] = list(exclude_ids)
    return sql.SQL(" AND ").join(clauses), params


# prepare=False on every filtered query: psycopg prepares a statement run 5 times, and Postgres then
# may switch to a generic plan, which cannot see how selective `symbols && $n` or `ts < $n` is and
# picks a scan that reads much of the table (measured: the per-symbol count 0.8 ms -> 7 ms).
def count_passing(conn: psycopg.Connection, where: sql.Composable, params: dict, cap: int, table: str) -> int:
    """Rows passing the filter, counted up to `cap` (reads at most `cap` rows)."""
    query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {w} LIMIT %(cap)s) AS passing").format(
        t=_table(table), w=where)
    return conn.execute(query, {**params, "cap": cap}, prepare=False).fetchone()[0]


def _exact(conn, where, params, k, table) -> list[tuple]:
    # The MATERIALIZED CTE keeps the planner off the HNSW index: every passing row is scored. Only
    # (id, distance) is materialised, so a few thousand rows stay within work_mem.
    query = sql.SQL(
        "WITH scored AS MATERIALIZED (SELECT id, embedding <=> %(query)s AS distance FROM {t} WHERE {w}), "
        "best AS (SELECT id, distance FROM scored ORDER BY distance, id LIMIT %(k)s) "
        "SELECT n.id, n.ts, n.headline, n.body, n.symbols, best.distance FROM best JOIN {t} AS n USING (id) "
        "ORDER BY best.distance, best.id").format(t=_table(table), w=where)
    return conn.execute(query, {**params, "k": k}, prepare=False).fetchall()


def _hnsw(conn, where, params, k, table, ef_search) -> list[tuple]:
    query = sql.SQL(
        "WITH nearest AS MATERIALIZED (SELECT id, ts, headline, body, symbols, embedding <=> %(query)s AS distance "
        "FROM {t} WHERE {w} ORDER BY embedding <=> %(query)s LIMIT %(k)s) "
        "SELECT id, ts, headline, body, symbols, distance FROM nearest ORDER BY distance, id").format(
        t=_table(table), w=where)
    with conn.transaction():
        # is_local = true: the settings end with this transaction (SET LOCAL)
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                     "set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        return conn.execute(query, {**params, "k": k}, prepare=False).fetchall()


def retrieve_as_of(conn: psycopg.Connection, query_embedding: Any, before: datetime, *,
                   symbols: Sequence[str] | None = None, k: int = 10, exclude_ids: Iterable[str] = (),
                   window: timedelta | None = None, plan: str = "auto", ef_search: int = EF_SEARCH,
                   exact_max_rows: int = EXACT_MAX_ROWS, table: str = NEWS_TABLE) -> Retrieval:
    """The k items most similar (cosine) to `query_embedding` published strictly before `before`
    (and at or after `before - window` when a window is given), sharing a symbol with `symbols` when
    given, never one of `exclude_ids`. The connection needs pgvector's types (see connect())."""
    vector = _vector(query_embedding, "the query embedding")
    before = _aware(before, "before")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise NewsMemoryError(f"k must be an integer from 1 to {MAX_K}, not {k!r}")
    if window is not None and (not isinstance(window, timedelta) or window <= timedelta(0)):
        raise NewsMemoryError(f"window must be a positive timedelta, not {window!r}")
    if plan not in PLANS:
        raise NewsMemoryError(f"unknown plan {plan!r}; the plans are {', '.join(PLANS)}")
    if isinstance(symbols, str):
        symbols = [symbols]
    symbols = sorted({s for s in symbols or () if s}) or None
    exclude = sorted(set(exclude_ids))
    where, params = _filters(before, symbols, exclude, window)
    params["query"] = vector
    passing = None
    if plan == "auto":
        # the time and symbol conditions only: an index-only scan of news_ts (or the GIN bitmap) counts
        # them without reading the table; rows still lacking an embedding and the few excluded ids
        # make it an upper bound of what the exact plan scores
        count_where, count_params = _filters(before, symbols, (), window, embedded_only=False)
        passing = count_passing(conn, count_where, count_params, exact_max_rows + 1, table)
        plan = "exact" if passing <= exact_max_rows else "hnsw"
    rows = _exact(conn, where, params, k, table) if plan == "exact" else _hnsw(conn, where, params, k, table, ef_search)
    items = tuple(RetrievedNews(id=r[0], ts=r[1], headline=r[2], body=r[3], symbols=tuple(r[4]),
                                similarity=1.0 - float(r[5])) for r in rows)
    return Retrieval(items=items, plan=plan, passing=passing)


class AsOfNewsRetriever(BaseRetriever):
    """LangChain's retriever over the news memory, as of a moment.

    The moment, symbols and excluded ids are fields (so `configurable_fields` can set them per run)
    and can be given per call: `retriever.invoke(text, as_of=t, symbols=["AAPL"], exclude_ids=[id])`.
    Without an as-of time it refuses: a retrieval with no "before" would look ahead.
    Documents: page_content is news_text (what was embedded); metadata has id, ts (ISO 8601), headline,
    symbols, similarity and the plan."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    connection: Any = Field(description="a psycopg Connection with pgvector registered (memory.connect)")
    embeddings: Embeddings
    k: int = 10
    as_of: datetime | None = None
    symbols: tuple[str, ...] | None = None
    exclude_ids: tuple[str, ...] = ()
    window: timedelta | None = None
    table: str = NEWS_TABLE

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        unknown = set(kwargs) - {"as_of", "symbols", "exclude_ids", "window", "k"}
        if unknown:
            raise NewsMemoryError(f"unknown retriever argument(s) {', '.join(sorted(unknown))}")
        as_of = kwargs.get("as_of", self.as_of)
        if as_of is None:
            raise NewsMemoryError("AsOfNewsRetriever needs an as_of time (a field or invoke(..., as_of=t))")
        retrieval = retrieve_as_of(
            self.connection, self.embeddings.embed_query(query), as_of,
            symbols=kwargs.get("symbols", self.symbols), k=kwargs.get("k", self.k),
            exclude_ids=kwargs.get("exclude_ids", self.exclude_ids), window=kwargs.get("window", self.window),
            table=self.table)
        return [Document(page_content=news_text({"headline": item.headline, "body": item.body}), id=item.id,
                         metadata={"id": item.id, "ts": item.ts.isoformat(), "headline": item.headline,
                                   "symbols": list(item.symbols), "similarity": item.similarity,
                                   "plan": retrieval.plan})
                for item in retrieval]
