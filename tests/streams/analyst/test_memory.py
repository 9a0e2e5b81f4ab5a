"""streams.analyst.memory: news embeddings in Postgres and retrieval as of a moment (never at or after
it), by an exact scan or HNSW, chosen by a bounded count; the LangChain retriever; `algo analyst
backfill`. Integration tests on the real Postgres, in a scratch table of news's shape (its indexes
included) dropped at the end; the backfill test writes to news itself, rows of its own, deleted after."""
import uuid
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from psycopg import sql

from streams.analyst import memory
from streams.analyst.embeddings import DIMENSIONS
from streams.analyst.memory import AsOfNewsRetriever, NewsMemoryError, retrieve_as_of, store

T0 = datetime(2005, 6, 1, 14, 30, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


def unit(rng, n=1):
    v = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(vector, rng, sigma=0.01):
    v = vector + sigma * rng.standard_normal(DIMENSIONS).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def item(news_id, ts, symbols=("AAPL",), headline=None):
    return {"id": news_id, "ts": ts, "source": "test", "headline": headline or f"headline {news_id}", "body": "",
            "symbols": list(symbols), "url": None}


@pytest.fixture(scope="module")
def scratch(provisioned):
    """(connection, table name): an empty table LIKE news INCLUDING ALL (so with sql/006's indexes)."""
    table = f"test_memory_{uuid.uuid4().hex[:8]}"
    conn = memory.connect(provisioned.database_url)
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE news INCLUDING ALL)").format(sql.Identifier(table)))
    yield conn, table
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.close()


def fresh(conn, table):
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))


@pytest.mark.integration
def test_the_migration_indexes_news_for_cosine_hnsw_and_symbols(provisioned):
    with psycopg.connect(provisioned.database_url) as conn:
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'news'").fetchall())
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["news_embedding_hnsw"]
    assert "USING gin (symbols)" in indexes["news_symbols_gin"]
    assert "USING btree (ts)" in indexes["news_ts"]


@pytest.mark.integration
def test_store_is_idempotent_and_fills_an_embedding_the_persistence_agent_left_null(scratch):
    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(1)
    items = [item(f"s{i}", T0 + i * US) for i in range(5)]
    vectors = unit(rng, 5)
    # the persistence agent got item s0 first: same row, no embedding, its own headline
    conn.execute(sql.SQL("INSERT INTO {} (id, ts, source, headline) VALUES ('s0', %s, 'vault', 'as persisted')")
                 .format(sql.Identifier(table)), (T0,))
    assert store(conn, items, vectors, table=table) == 5
    assert store(conn, items, vectors, table=table) == 0
    assert store(conn, items, unit(rng, 5), table=table) == 0  # an embedding once written stays
    rows = conn.execute(sql.SQL("SELECT id, headline, source, embedding FROM {} ORDER BY id")
                        .format(sql.Identifier(table))).fetchall()
    assert [r[0] for r in rows] == ["s0", "s1", "s2", "s3", "s4"]
    assert rows[0][1:3] == ("as persisted", "vault")  # the existing row's columns are kept
    np.testing.assert_allclose(np.stack([r[3] for r in rows]), vectors, rtol=0, atol=0)


@pytest.mark.integration
def test_store_refuses_bad_input_in_one_line(scratch):
    conn, table = scratch
    rng = np.random.default_rng(2)
    with pytest.raises(NewsMemoryError, match=r"need a \(2, 384\) embedding array"):
        store(conn, [item("a", T0), item("b", T0)], unit(rng, 1), table=table)
    with pytest.raises(NewsMemoryError, match="no time zone"):
        store(conn, [item("a", T0.replace(tzinfo=None))], unit(rng, 1), table=table)
    with pytest.raises(NewsMemoryError, match="finite and non-zero"):
        store(conn, [item("a", T0)], np.zeros((1, DIMENSIONS)), table=table)


@pytest.mark.integration
@pytest.mark.parametrize("plan", memory.PLANS)
def test_as_of_excludes_items_at_or_after_the_moment_and_the_item_itself(scratch, plan):
    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(3)
    query = unit(rng)[0]
    items = [item("before", T0 - US), item("same-time", T0), item("after", T0 + US), item("self", T0 - 2 * US),
             item("older", T0 - timedelta(days=40))]
    store(conn, items, np.stack([near(query, rng) for _ in items]), table=table)
    got = retrieve_as_of(conn, query, T0, exclude_ids=["self"], plan=plan, table=table)
    assert sorted(got.ids) == ["before", "older"]
    assert all(r.ts < T0 for r in got)
    windowed = retrieve_as_of(conn, query, T0, exclude_ids=["self"], window=timedelta(days=30), plan=plan, table=table)
    assert windowed.ids == ["before"]
    assert retrieve_as_of(conn, query, T0 - 2 * US, plan=plan, table=table).ids == ["older"]


@pytest.mark.integration
def test_both_plans_give_the_exact_answer_on_a_small_set_with_ties_broken_by_id(scratch):
    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(4)
    n = 300
    vectors = unit(rng, n)
    vectors[[7, 8, 9]] = vectors[7]  # three identical vectors: equal distances, ordered by id
    symbols = [["AAPL"] if i % 3 == 0 else ["IBM", "MSFT"] if i % 3 == 1 else ["GOOG"] for i in range(n)]
    ids = [f"t{(i * 37) % n:03d}" for i in range(n)]  # ids not in time order
    items = [item(ids[i], T0 + timedelta(hours=i), symbols[i]) for i in range(n)]
    store(conn, items, vectors, table=table)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    before = T0 + timedelta(hours=250)
    for query, kwargs in [(vectors[7], {}), (near(vectors[100], rng, 0.05), {"symbols": ["IBM"]}),
                          (unit(rng)[0], {"window": timedelta(hours=60)}), (vectors[7], {"exclude_ids": [ids[8]]})]:
        # numpy's answer: cosine similarity over the rows passing the filter, ties by id
        passing = [i for i in range(n) if items[i]["ts"] < before
                   and (not kwargs.get("symbols") or set(symbols[i]) & set(kwargs["symbols"]))
                   and ("window" not in kwargs or items[i]["ts"] >= before - kwargs["window"])
                   and ids[i] not in kwargs.get("exclude_ids", ())]
        sims = vectors[passing] @ query / np.linalg.norm(query)
        expected = [ids[passing[j]] for j in sorted(range(len(passing)), key=lambda j: (-round(float(sims[j]), 5), ids[passing[j]]))][:10]
        exact = retrieve_as_of(conn, query, before, plan="exact", table=table, **kwargs)
        assert scans_hnsw(conn, table, query, before, **kwargs)
        with planner_on_the_index(conn):
            hnsw = retrieve_as_of(conn, query, before, plan="hnsw", table=table, **kwargs)
        assert exact.ids == expected and hnsw.ids == expected, kwargs
        assert exact.plan == "exact" and hnsw.plan == "hnsw"
        np.testing.assert_allclose([r.similarity for r in hnsw], [r.similarity for r in exact], atol=1e-6)
    tied = retrieve_as_of(conn, vectors[7], before, k=3, plan="exact", table=table)
    assert tied.ids == sorted([ids[7], ids[8], ids[9]]) and tied[0].similarity == pytest.approx(1.0, abs=1e-6)


@contextmanager
def planner_on_the_index(conn):
    """On a table this small Postgres would rather sort the rows itself; keep it on the HNSW index."""
    with conn.transaction():
        conn.execute("SET LOCAL enable_sort = off")
        yield


def scans_hnsw(conn, table, query, before, **kwargs) -> bool:
    where, params = memory._filters(before, kwargs.get("symbols"), kwargs.get("exclude_ids", []), kwargs.get("window"))
    explain = sql.SQL("EXPLAIN SELECT id FROM {t} WHERE {w} ORDER BY embedding <=> %(query)s LIMIT 10").format(
        t=sql.Identifier(table), w=where)
    with planner_on_the_index(conn):
        plan = "\n".join(r[0] for r in conn.execute(explain, {**params, "query": query}))
    return f"Index Scan using {table}_embedding_idx" in plan


@pytest.mark.integration
def test_the_hnsw_plan_sets_iterative_scans_and_ef_search_for_its_transaction_only(scratch):
    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(8)
    store(conn, [item(f"h{i}", T0 + timedelta(days=i)) for i in range(20)], unit(rng, 20), table=table)
    where, params = memory._filters(T0 + timedelta(days=30), None, [], None)
    with conn.transaction():
        memory._hnsw(conn, where, {**params, "query": unit(rng)[0]}, 3, table, 77)
        settings = conn.execute("SELECT current_setting('hnsw.iterative_scan'), current_setting('hnsw.ef_search')").fetchone()
    assert settings == ("relaxed_order", "77")
    assert conn.execute("SELECT current_setting('hnsw.iterative_scan')").fetchone()[0] == "off"  # SET LOCAL only


@pytest.mark.integration
def test_the_rule_chooses_exact_for_a_selective_filter_and_hnsw_for_a_wide_one(scratch):
    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(5)
    items = [item(f"r{i:03d}", T0 + timedelta(days=i), ["CSCO"] if i < 20 else ["AAPL"]) for i in range(200)]
    store(conn, items, unit(rng, 200), table=table)
    query, late = unit(rng)[0], T0 + timedelta(days=1000)
    selective = retrieve_as_of(conn, query, late, symbols=["CSCO"], exact_max_rows=50, table=table)
    wide = retrieve_as_of(conn, query, late, exact_max_rows=50, table=table)
    assert (selective.plan, selective.passing) == ("exact", 20)
    assert (wide.plan, wide.passing) == ("hnsw", 51)  # counted up to the threshold + 1, not further
    assert len(wide) == 10 and len(selective) == 10 and all("CSCO" in r.symbols for r in selective)
    # the shipped constants: a table of a few hundred items is always scanned exactly
    assert retrieve_as_of(conn, query, late, table=table).plan == "exact"
    assert memory.EXACT_MAX_ROWS >= 200


@pytest.mark.integration
def test_retrieve_refuses_bad_arguments_in_one_line(scratch):
    conn, table = scratch
    query = unit(np.random.default_rng(6))[0]
    for kwargs, message in [({"before": T0.replace(tzinfo=None)}, "no time zone"), ({"k": 0}, "k must be"),
                            ({"plan": "fast"}, "unknown plan"), ({"window": timedelta(0)}, "positive timedelta"),
                            ({"query_embedding": query[:10]}, "shape")]:
        args = {"query_embedding": query, "before": T0, **kwargs}
        with pytest.raises(NewsMemoryError, match=message):
            retrieve_as_of(conn, args.pop("query_embedding"), args.pop("before"), table=table, **args)


class FixedEmbeddings(Embeddings):
    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts):
        return [self.vectors[t].tolist() for t in texts]

    def embed_query(self, text):
        return self.vectors[text].tolist()


@pytest.mark.integration
def test_the_langchain_retriever_returns_documents_as_of_the_call(scratch):
    from langchain_core.runnables import ConfigurableField

    conn, table = scratch
    fresh(conn, table)
    rng = np.random.default_rng(7)
    query = unit(rng)[0]
    items = [item(f"d{i}", T0 + timedelta(days=i), ["AAPL"] if i % 2 else ["IBM"], headline=f"Headline {i}")
             for i in range(6)]
    store(conn, items, np.stack([near(query, rng, 0.01 * (i + 1)) for i in range(6)]), table=table)
    retriever = AsOfNewsRetriever(connection=conn, embeddings=FixedEmbeddings({"q": query}), k=3, table=table)
    docs = retriever.invoke("q", as_of=T0 + timedelta(days=4), symbols=["AAPL"])
    assert all(isinstance(d, Document) for d in docs)
    # d1 is nearer than d3 (less noise); d5 is after the moment; IBM items were not asked for
    assert [d.metadata["id"] for d in docs] == ["d1", "d3"]
    assert docs[0].page_content == "Headline 1"
    assert docs[0].metadata["ts"] == (T0 + timedelta(days=1)).isoformat()
    assert 0.9 < docs[0].metadata["similarity"] <= 1.0 and docs[0].metadata["plan"] == "exact"
    # as a configurable runnable: the moment comes with each run's config
    configurable = retriever.configurable_fields(as_of=ConfigurableField(id="as_of"))
    late = configurable.invoke("q", config={"configurable": {"as_of": T0 + timedelta(days=10)}})
    assert [d.metadata["id"] for d in late] == ["d0", "d1", "d2"]
    with pytest.raises(NewsMemoryError, match="needs an as_of time"):
        retriever.invoke("q")


# --- the shipped corpus: no retrieved item is published at or after the query time ---------------

@pytest.fixture(scope="module")
def corpus(scratch):
    from streams.analyst.embeddings import embed, news_text
    from streams.analyst.resources import demo_corpus
    from streams.market.news import load_news

    conn, table = scratch
    fresh(conn, table)
    items = load_news(demo_corpus())
    vectors = embed([news_text(i) for i in items])
    assert store(conn, items, vectors, table=table) == len(items)
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    return conn, table, items, vectors


def _moments(items):
    times = [i["ts"] for i in items]
    first, last = min(times), max(times)
    exact_times = st.sampled_from(times)  # equal timestamps: the boundary that leaks most easily
    return st.one_of(exact_times, exact_times.map(lambda t: t + US), exact_times.map(lambda t: t - US),
                     st.datetimes(min_value=(first - timedelta(days=30)).replace(tzinfo=None),
                                  max_value=(last + timedelta(days=30)).replace(tzinfo=None),
                                  timezones=st.just(timezone.utc)))


@pytest.mark.integration
def test_property_no_retrieved_item_is_published_at_or_after_the_query_time(corpus):
    conn, table, items, vectors = corpus
    symbols = sorted({s for i in items for s in i["symbols"]})
    by_id = {i["id"]: i for i in items}
    assert len(items) >= 300 and len(symbols) >= 5

    @hypothesis_settings(max_examples=250, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def check(data):
        me = data.draw(st.integers(0, len(items) - 1), label="query item")
        before = data.draw(_moments(items), label="before")
        chosen = data.draw(st.none() | st.lists(st.sampled_from(symbols), min_size=1, max_size=2), label="symbols")
        window = data.draw(st.none() | st.integers(1, 3000).map(lambda d: timedelta(days=d)), label="window")
        plan = data.draw(st.sampled_from(memory.PLANS), label="plan")
        k = data.draw(st.integers(1, 20), label="k")
        with planner_on_the_index(conn) if plan == "hnsw" else nullcontext():  # the graph, not a sort
            got = retrieve_as_of(conn, vectors[me], before, symbols=chosen, k=k, exclude_ids=[items[me]["id"]],
                                 window=window, plan=plan, table=table)
        assert all(r.ts < before for r in got), [(r.id, r.ts) for r in got if r.ts >= before]
        assert items[me]["id"] not in got.ids and len(set(got.ids)) == len(got)
        for r in got:
            assert by_id[r.id]["ts"] == r.ts
            assert window is None or r.ts >= before - window
            assert not chosen or set(r.symbols) & set(chosen)
        # and nothing that should have come is missing: numpy's top-k similarities over the same filter
        passing = [j for j, i in enumerate(items) if i["ts"] < before and j != me
                   and (window is None or i["ts"] >= before - window)
                   and (not chosen or set(i["symbols"]) & set(chosen))]
        expected = np.sort(vectors[passing] @ vectors[me])[::-1][:k]
        assert len(got) == len(expected)
        np.testing.assert_allclose([r.similarity for r in got], expected, atol=1e-5)

    check()


# --- algo analyst backfill ------------------------------------------------------------------------

@pytest.mark.integration
def test_backfill_twice_embeds_nothing_the_second_time(provisioned, tmp_path):
    from click.testing import CliRunner

    from ops.cli import cli
    from streams.market.news import load_news

    token = uuid.uuid4().hex[:8]
    path = tmp_path / "news.csv"
    path.write_text("published_at,symbols,headline,summary,source,url\n"
                    f"2004-01-14,AAPL,Backfill test {token} one,A summary.,test,\n"
                    f"2004-01-15,IBM,Backfill test {token} two,,test,\n"
                    f"2004-01-16,MSFT,Backfill test {token} three,Another summary.,test,http://example.com\n")
    ids = [i["id"] for i in load_news(path)]
    try:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            # the persistence agent stored one of them already, without an embedding
            conn.execute("INSERT INTO news (id, ts, source, headline) VALUES (%s, '2004-01-14', 'test', 'x') "
                         "ON CONFLICT (id) DO NOTHING", (ids[0],))
        runner = CliRunner()
        first = runner.invoke(cli, ["analyst", "backfill", "--news", str(path), "--batch", "2"])
        assert first.exit_code == 0, first.output
        assert "backfill: 3 embedded, 0 already embedded, 3 items" in first.output
        second = runner.invoke(cli, ["analyst", "backfill", "--news", str(path)])
        assert second.exit_code == 0, second.output
        assert "backfill: 0 embedded, 3 already embedded, 3 items" in second.output
        with psycopg.connect(provisioned.database_url) as conn:
            assert conn.execute("SELECT count(*) FROM news WHERE id = ANY(%s) AND embedding IS NOT NULL",
                                (ids,)).fetchone()[0] == 3
        missing = runner.invoke(cli, ["analyst", "backfill", "--news", str(tmp_path / "nope.csv")])
        assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output
    finally:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM news WHERE id = ANY(%s)", (ids,))
