"""The Analyst's real parts put together: the symbol table, the embedding model, the memory of news in
Postgres (pgvector), the shipped classifier and, when configured, a chat model; and the one function
the agent calls per news item. Blocking (the model, Postgres): the agent runs it in a thread.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import numpy as np
import psycopg

from streams.analyst import chain
from streams.analyst.chain import AnalystError, ChainParts, VoteInputs
from streams.analyst.memory import connect
from streams.errors import ServiceUnavailable
from streams.market.bars import to_micros
from streams.memory.keys import cache_key
from streams.outages import postgres_errors
from streams.settings import Settings

log = logging.getLogger("algo.analyst")
MEMORY_TIMEOUT_S = 60.0  # a read through the tiered store, from the analyst's thread


def _part(text: str) -> str:
    return quote(text, safe="")  # a cache key part holds no ':'


def embedding_key(news_id: str) -> str:
    from streams.analyst.embeddings import model_version

    return cache_key("embedding", _part(news_id), model_version())


def retrieval_key(item: dict, symbol: str, k: int, window_s: float) -> str:
    """retrieval:<symbol>:<as-of micros>:<k>:<window s>:<news id>; the item's id is part of it because its
    embedding is the query (two items at the same microsecond retrieve differently)."""
    return cache_key("retrieval", _part(symbol), to_micros(item["ts"]), k, f"{window_s:g}", _part(item["id"]))


def _row_json(row) -> dict:
    return {"id": row.id, "ts": row.ts.isoformat(), "headline": row.headline, "body": row.body,
            "symbols": list(row.symbols), "similarity": row.similarity}


def _row_from_json(data: dict):
    from streams.analyst.memory import RetrievedNews

    return RetrievedNews(id=data["id"], ts=datetime.fromisoformat(data["ts"]), headline=data["headline"],
                         body=data["body"], symbols=tuple(data["symbols"]), similarity=data["similarity"])


@dataclass(frozen=True)
class Analysis:
    """What one news item gave: AgentSignals, AgentLogs (vote records, unknown-company notes) and the
    vote records themselves."""
    signals: list[dict]
    logs: list[dict]
    records: list[dict]


def embeddings_of(conn: psycopg.Connection, ids: list[str]) -> dict[str, np.ndarray]:
    """The stored news.embedding of each id that has one."""
    if not ids:
        return {}
    rows = conn.execute("SELECT id, embedding FROM news WHERE id = ANY(%s) AND embedding IS NOT NULL",
                        (list(ids),)).fetchall()
    return {row[0]: np.asarray(row[1], dtype=np.float32) for row in rows}


def with_resolved_symbols(items: list[dict]) -> list[dict]:
    """The items with the symbols their text names added to the declared ones (what the analyst
    stores), so a backfilled item without declared symbols is found by the per-symbol retrieval."""
    from streams.analyst.symbols import SymbolTable

    table = SymbolTable.load()
    return [{**item, "symbols": sorted({*(item.get("symbols") or ()), *table.resolve(
        item["headline"], item.get("body") or "", item.get("symbols") or (), as_of=item["ts"]).symbols})}
        for item in items]


class Analyst:
    """One per worker. Loads the scorer, the symbol table and the models on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.rules = settings, settings.analyst
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._chain = None
        self._versions: dict | None = None
        self._memory = None  # a streams.memory TieredStore, with the event loop it runs on (use_memory)
        self._loop: asyncio.AbstractEventLoop | None = None

    def use_memory(self, store, loop: asyncio.AbstractEventLoop) -> None:
        """Reads retrievals and embeddings through the tiered store (Redis, cold_store) open on `loop`
        (the worker's); analyse() goes on running in its own thread."""
        self._memory, self._loop = store, loop

    def _through_memory(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(MEMORY_TIMEOUT_S)

    # the parts, loaded once
    def _load(self) -> None:
        if self._chain is not None:
            return
        from streams.analyst.embeddings import model_version as embedding_version
        from streams.analyst.scorer import Scorer
        from streams.analyst.symbols import SymbolTable

        scorer = Scorer.load(self.rules.scorer_dir or None)
        table = self._table = SymbolTable.load()
        judge, llm_name = None, None
        if self.rules.llm:
            judge, llm_name = chain.build_judge(chain.chat_model(self.rules)), self.rules.llm
        self._versions = {"scorer": scorer.version, "embedding": embedding_version(), "chain": chain.CHAIN_VERSION,
                          **({"llm": llm_name, "prompt": chain.PROMPT_VERSION} if llm_name else {})}
        self.model_version = chain.model_version(scorer.version, embedding_version(), llm_name or "")
        self._chain = chain.build_chain(ChainParts(
            resolve=lambda item: table.resolve(item["headline"], item.get("body") or "", item.get("symbols") or (),
                                               as_of=item["ts"]),
            retrieve=self._retrieve, scorer=scorer, rules=self.rules, judge=judge, llm_model=llm_name))
        self.scorer = scorer

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings.database_url)
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _retrieve_rows(self, item: dict, embedding: np.ndarray, symbol: str):
        from streams.analyst.memory import retrieve_as_of

        return retrieve_as_of(self._connection(), embedding, item["ts"], symbols=[symbol], k=self.rules.context_k,
                              exclude_ids=(item["id"],), window=timedelta(seconds=self.rules.window_s))

    def _retrieve(self, item: dict, embedding: np.ndarray, symbol: str) -> list:
        if self._memory is None:
            rows = self._retrieve_rows(item, embedding, symbol)
            stored = embeddings_of(self._connection(), [r.id for r in rows])
        else:
            async def load() -> list[dict]:
                return [_row_json(r) for r in await asyncio.to_thread(self._retrieve_rows, item, embedding, symbol)]

            key = retrieval_key(item, symbol, self.rules.context_k, self.rules.window_s)
            rows = [_row_from_json(r) for r in self._through_memory(self._memory.get_json(key, load))]
            stored = self._through_memory(self._embeddings_through_memory([r.id for r in rows]))
        return [_WithEmbedding(r, stored[r.id]) for r in rows if r.id in stored]

    async def _embeddings_through_memory(self, ids: list[str]) -> dict[str, np.ndarray]:
        """The embeddings of `ids` from the tiered store; those it lacks from Postgres in one query, then
        stored in it."""
        raws = await asyncio.gather(*(self._memory.get(embedding_key(news_id)) for news_id in ids))
        found = {news_id: np.frombuffer(raw, dtype=np.float32).copy() for news_id, raw in zip(ids, raws) if raw}
        missing = [news_id for news_id in ids if news_id not in found]
        if missing:
            loaded = await asyncio.to_thread(embeddings_of, self._connection(), missing)
            for news_id, vector in loaded.items():
                await self._memory.put(embedding_key(news_id), np.asarray(vector, dtype=np.float32).tobytes())
            found.update(loaded)
        return found

    def _item_embedding(self, item: dict) -> np.ndarray:
        if self._memory is None:
            return self._stored_item_embedding(item)

        async def load() -> bytes:
            vector = await asyncio.to_thread(self._stored_item_embedding, item)
            return np.asarray(vector, dtype=np.float32).tobytes()

        raw = self._through_memory(self._memory.get(embedding_key(item["id"]), load))
        return np.frombuffer(raw, dtype=np.float32).copy()

    def _stored_item_embedding(self, item: dict) -> np.ndarray:
        """The stored embedding (written by backfill or an earlier run), else embedded and stored now:
        a vote and its replay then score the very same vector."""
        from streams.analyst.embeddings import embed, news_text
        from streams.analyst.memory import store

        conn = self._connection()
        stored = embeddings_of(conn, [item["id"]])
        if item["id"] in stored:
            return stored[item["id"]]
        vector = embed([news_text(item)])
        resolved = self._table.resolve(item["headline"], item.get("body") or "", item.get("symbols") or (),
                                       as_of=item["ts"]).symbols
        store(conn, [{**item, "symbols": sorted({*(item.get("symbols") or ()), *resolved})}], vector)
        return embeddings_of(conn, [item["id"]]).get(item["id"], vector[0])

    def analyse(self, item: dict) -> Analysis:
        """The votes on one NewsItem (one per company it names). ServiceUnavailable while Postgres is
        down: the caller waits and tries the same item again."""
        with self._lock:
            self._load()
            try:
                with postgres_errors():
                    embedding = self._item_embedding(item)
                    state = self._chain.invoke({"item": item, "ts_us": to_micros(item["ts"]), "embedding": embedding})
            except (ServiceUnavailable, psycopg.Error):  # a fresh connection for the next try
                self._drop_connection()
                raise
        return self._results(item, state)

    def _results(self, item: dict, state: dict) -> Analysis:
        resolution = state["resolution"]
        if not resolution.symbols:
            ts = item["ts"] if isinstance(item["ts"], datetime) else datetime.fromtimestamp(item["ts"] / 1e6, timezone.utc)
            note = chain.unknown_company_log(item, ts, getattr(resolution, "unknown_declared", ()))
            log.info("%s", note["message"])
            return Analysis([], [note], [])
        signals, logs, records = [], [], []
        for symbol, (inputs, vote) in sorted(state["votes"].items()):
            signal = chain.signal_record(inputs, vote, self.model_version)
            record = chain.vote_record(inputs, vote, signal, self.rules, self._versions)
            signals.append(signal)
            records.append(record)
            logs.append(chain.log_record(record))
        return Analysis(signals, logs, records)


class _WithEmbedding:
    """A retrieved row with its stored embedding (what decide() scores)."""

    def __init__(self, row, embedding: np.ndarray) -> None:
        self._row, self.embedding = row, embedding

    def __getattr__(self, name):
        return getattr(self._row, name)


# --- replay -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplayReport:
    signal_id: str
    matches: bool
    differences: list[str]
    recorded: dict
    rederived: dict


def find_record(conn: psycopg.Connection, signal_id: str) -> dict:
    import json

    row = conn.execute(
        "SELECT context->>'record' FROM agent_logs WHERE agent = %s AND context->>'kind' = 'vote' "
        "AND context->>'signal_id' = %s ORDER BY ts LIMIT 1", (chain.AGENT, signal_id)).fetchone()
    if row is None or row[0] is None:
        raise AnalystError(f"no analyst vote record for signal {signal_id} in agent_logs "
                           "(is it an analyst signal, and has the persistence worker stored agent.logs?)")
    return json.loads(row[0])


def replay_vote(settings: Settings, signal_id: str) -> ReplayReport:
    """Re-derives a recorded vote offline: the same inputs (the stored embeddings of the item and its
    context, the recorded similarities, the recorded LLM answer) through the same decide()."""
    from dataclasses import asdict

    from streams.analyst.scorer import Scorer

    rules_dir = settings.analyst.scorer_dir or None
    conn = connect(settings.database_url)
    try:
        with postgres_errors():
            record = find_record(conn, signal_id)
            inputs: VoteInputs = chain.inputs_from_record(record)
            stored = embeddings_of(conn, [inputs.news_id, *(c.id for c in inputs.context)])
            signal_row = conn.execute("SELECT action, confidence, rationale, model_version FROM signals "
                                      "WHERE signal_id = %s", (signal_id,)).fetchone()
    finally:
        conn.close()
    scorer = Scorer.load(rules_dir)
    recorded_versions = record["versions"]
    if recorded_versions.get("scorer") != scorer.version:
        raise AnalystError(f"signal {signal_id} was scored by {recorded_versions.get('scorer')}; this install "
                           f"has {scorer.version} (set ANALYST_SCORER_DIR to that model to replay it)")
    missing = [i for i in [inputs.news_id, *(c.id for c in inputs.context)] if i not in stored]
    if missing:
        raise AnalystError(f"signal {signal_id}: no stored embedding for news {', '.join(missing[:3])}")
    context = np.asarray([stored[c.id] for c in inputs.context], dtype=np.float32).reshape(
        len(inputs.context), len(stored[inputs.news_id]))
    vote = chain.decide(inputs, stored[inputs.news_id], context, scorer, chain.rules_from_record(record))
    version = record["signal"]["model_version"]
    signal = chain.signal_record(inputs, vote, version)
    rederived = {"signal_id": signal["signal_id"], "vote": _jsonable(asdict(vote)),
                 "signal": {k: signal[k] for k in ("action", "confidence", "rationale", "model_version")}}
    differences = []
    if signal["signal_id"] != signal_id:
        differences.append(f"signal id {signal['signal_id']} != {signal_id}")
    for key, value in rederived["vote"].items():
        if record["vote"].get(key) != value:
            differences.append(f"vote.{key}: recorded {record['vote'].get(key)!r}, re-derived {value!r}")
    for key, value in rederived["signal"].items():
        if record["signal"].get(key) != value:
            differences.append(f"signal.{key}: recorded {record['signal'].get(key)!r}, re-derived {value!r}")
    if signal_row is not None:
        for key, value in zip(("action", "confidence", "rationale", "model_version"), signal_row):
            if rederived["signal"][key] != value:
                differences.append(f"signals table {key}: stored {value!r}, re-derived {rederived['signal'][key]!r}")
    return ReplayReport(signal_id, not differences, differences, record, rederived)


def _jsonable(value):
    import json

    return json.loads(json.dumps(value))
