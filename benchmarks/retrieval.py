"""As-of news retrieval over pgvector: recall@10 and latency of the exact and HNSW plans of
streams.analyst.memory.retrieve_as_of, on 100,000 items, for a wide and two narrow filters.

Data. A few thousand real sentences are embedded with the project's MiniLM (streams.analyst.embeddings):
the demo corpus's headlines and summaries (streams/analyst/data/news.csv), the labelled financial
sentences (streams/analyst/data/sentences.csv or sentences_src/), and generated headline variants
(company x event x detail templates). Each sentence is a topic. Items are made from topics the way
news clusters: a topic gets a Zipf-like share of the items, each item is the topic's vector plus
Gaussian noise (per-dimension sigma drawn from 0.01-0.04, i.e. cosine 0.99-0.77 to the topic),
re-normalised; a topic has a centre time and its items fall within about a year of it (stories
cluster in time), over 2000-2013 (14 years); a topic has a main symbol (8 symbols, skewed shares,
CSCO about 1%) and 10% of items name a second one (drawn with the same shares). Queries are fresh items drawn the same way.

Filters (all strictly before a query time t, excluding nothing):
- wide:          t between the 85th and 95th percentile of item times (~90% of rows pass);
- narrow_month:  a 31-day window before t (~0.6% pass);
- narrow_symbol: items naming CSCO, t late in the range (~1% pass).
Plans: exact (every passing row scored), hnsw at each ef_search (iterative relaxed_order scan),
and auto (the module's rule). Recall@10 is measured against the exact plan's answer; latency is the
client's wall time of one retrieve_as_of call (the bounded count included for auto).

Never tuned on the data reported: ef_search and the exact-rows threshold are chosen on one set of
queries (seed 1: a selectivity sweep and an ef_search sweep), and the table reports a second set
(seed 2). The scratch table copies news's columns and index definitions (sql/006) and is dropped at
the end; the shared news table is never touched.

    .venv/bin/python benchmarks/retrieval.py [--items 100000] [--queries 200] [--json]
Needs the local stack with migrations applied (`algo provision`). Takes several minutes (the
HNSW build on 2 cores). Writes benchmarks/results/retrieval.json.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import platform
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from psycopg import sql  # noqa: E402

from streams.analyst import memory  # noqa: E402
from streams.settings import get_settings  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "retrieval.json"
DATA = ROOT / "streams" / "analyst" / "data"
TABLE = "bench_retrieval_news"
SYMBOLS = ("AAPL", "MSFT", "IBM", "GOOG", "FB", "ORCL", "INTC", "CSCO")
SYMBOL_SHARES = (0.30, 0.22, 0.18, 0.13, 0.08, 0.05, 0.03, 0.01)
RARE_SYMBOL = "CSCO"
START = datetime(2000, 1, 1, tzinfo=timezone.utc)
SPAN_S = (datetime(2014, 1, 1, tzinfo=timezone.utc) - START).total_seconds()
EF_GRID = (40, 64, 100, 150, 200, 300)
SWEEP_FRACTIONS = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
K = 10
RECALL_GOAL, P99_GOAL_MS = 0.98, 10.0
TUNING_MARGIN = 0.01

COMPANIES = ("Apple", "Microsoft", "IBM", "Google", "Facebook", "Oracle", "Intel", "Cisco", "Amazon", "Dell",
             "Hewlett-Packard", "Yahoo", "Nokia", "Sony", "Samsung", "Motorola", "Adobe", "eBay", "Qualcomm", "Nvidia")
EVENTS = ("reports quarterly earnings above analyst estimates", "misses revenue forecasts as demand slows",
          "announces a new chief executive", "agrees to acquire a software maker", "faces a patent lawsuit",
          "settles an antitrust case with regulators", "launches a new smartphone", "cuts jobs in a restructuring",
          "raises its dividend", "unveils a cloud computing service", "recalls faulty batteries",
          "opens a research centre in Asia", "wins a large government contract", "delays its flagship product",
          "lowers full-year guidance", "buys back shares worth billions", "shares fall after a downgrade",
          "shares jump on strong holiday sales", "signs a licensing deal with a rival", "is fined by the European Commission")
DETAILS = ("", " in a surprise move", " after months of talks", " amid investor concern", " ahead of the holiday season",
           " according to people familiar with the matter", " as competition intensifies", " for the second time this year")


def percentile_ms(samples_ns: list[int], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples_ns, dtype=np.float64) / 1e6, q)), 2)


def sentences() -> tuple[list[str], int]:
    """The real sentences (corpus, labelled set) plus generated headline variants, deduplicated; and how
    many of them are real."""
    texts: list[str] = []
    news = DATA / "news.csv"
    if news.is_file():
        with news.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                texts += [row.get("headline") or "", row.get("summary") or ""]
    labelled = DATA / "sentences.csv"
    if labelled.is_file():
        with labelled.open(encoding="utf-8") as handle:
            texts += [row.get("text") or "" for row in csv.DictReader(handle)]
    else:
        for path in sorted((DATA / "sentences_src").glob("*.txt")):
            texts += [line.split("|", 1)[1] for line in path.read_text().splitlines()
                      if "|" in line and not line.startswith("#")]
    real = len({t.strip() for t in texts if t.strip()})
    rng = np.random.default_rng(7)
    combos = list(itertools.product(COMPANIES, EVENTS, DETAILS))
    for index in rng.permutation(len(combos))[:2000]:
        company, event, detail = combos[index]
        texts.append(f"{company} {event}{detail}")
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    return unique, real


class World:
    """Topics (embedded sentences) with a centre time, a main symbol and a share of the items."""

    def __init__(self, topics: np.ndarray, texts: list[str], seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.topics, self.texts = topics, texts
        n = len(topics)
        weights = 1.0 / np.arange(1, n + 1) ** 0.7  # Zipf-like: a few big stories, many small ones
        self.weights = rng.permutation(weights / weights.sum())
        self.centre_s = rng.uniform(0, SPAN_S, n)
        self.symbol = rng.choice(len(SYMBOLS), size=n, p=SYMBOL_SHARES)

    def draw(self, count: int, seed: int):
        rng = np.random.default_rng(seed)
        topic = rng.choice(len(self.topics), size=count, p=self.weights)
        sigma = rng.uniform(0.01, 0.04, size=(count, 1))
        vectors = self.topics[topic] + sigma * rng.standard_normal((count, self.topics.shape[1]))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        offset_s = rng.normal(0, 182 * 86400.0, count)  # about a year either side
        when_s = np.mod(self.centre_s[topic] + offset_s, SPAN_S)
        second = rng.random(count) < 0.10
        other = rng.choice(len(SYMBOLS), size=count, p=SYMBOL_SHARES)
        symbols = [sorted({SYMBOLS[self.symbol[t]], SYMBOLS[o]}) if s else [SYMBOLS[self.symbol[t]]]
                   for t, s, o in zip(topic, second, other)]
        return topic, vectors, when_s, symbols


def build_table(conn, world: World, items: int) -> dict:
    """The scratch table: news's columns, loaded by COPY, then news's indexes (sql/006) rebuilt on it."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE news INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
        sql.Identifier(TABLE)))
    topic, vectors, when_s, symbols = world.draw(items, seed=0)
    started = time.perf_counter()
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY {} (id, ts, source, headline, body, symbols, url, embedding) FROM STDIN "
                              "WITH (FORMAT BINARY)").format(sql.Identifier(TABLE))) as copy:
            copy.set_types(["text", "timestamptz", "text", "text", "text", "text[]", "text", "vector"])
            for i in range(items):
                copy.write_row((f"bench-{i:06d}", START + timedelta(seconds=float(when_s[i])), "bench",
                                world.texts[topic[i]], "", symbols[i], None, vectors[i]))
    load_s = time.perf_counter() - started
    definitions = [row[0] for row in conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'news' ORDER BY indexname")]
    if not any("hnsw" in d for d in definitions):
        raise SystemExit("the news table has no HNSW index: run `algo provision` (sql/006_news_memory.sql)")
    conn.execute("SET maintenance_work_mem = '1GB'")  # the graph fits in memory: a much faster build
    built = {}
    for definition in definitions:
        name = re.search(r"INDEX (\S+) ON", definition).group(1)
        copy_def = definition.replace(f"INDEX {name} ON public.news ", f"INDEX {TABLE}_{name} ON public.{TABLE} ")
        started = time.perf_counter()
        conn.execute(copy_def)
        built[name] = {"definition": copy_def, "build_s": round(time.perf_counter() - started, 1)}
    conn.execute("RESET maintenance_work_mem")
    # what autovacuum does to a table this size after a load: statistics and the visibility map (which
    # lets the auto rule's bounded count be an index-only scan)
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(TABLE)))
    size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s))", (TABLE,)).fetchone()[0]
    return {"items": items, "load_s": round(load_s, 1), "indexes": built, "total_size": size}


class Queries:
    """Query vectors (fresh items) and, per filter, the query times and arguments."""

    def __init__(self, world: World, times_s: np.ndarray, count: int, seed: int) -> None:
        _, self.vectors, _, _ = world.draw(count, seed=seed)
        rng = np.random.default_rng(seed + 1000)
        lo90, hi90 = np.percentile(times_s, [85, 95])
        late = np.percentile(times_s, 90)
        self.filters = {
            "wide": [dict(before=_at(s)) for s in rng.uniform(lo90, hi90, count)],
            "narrow_month": [dict(before=_at(s), window=timedelta(days=31)) for s in rng.uniform(40 * 86400, SPAN_S, count)],
            "narrow_symbol": [dict(before=_at(s), symbols=[RARE_SYMBOL]) for s in rng.uniform(late, SPAN_S, count)],
        }
        self.count, self.times_s, self.rng = count, times_s, rng

    def window_filter(self, fraction: float) -> list[dict]:
        """A time window holding about `fraction` of the rows, before a random t."""
        width_s = fraction * SPAN_S
        return [dict(before=_at(s), window=timedelta(seconds=width_s))
                for s in self.rng.uniform(width_s, SPAN_S, self.count)]


def _at(seconds: float) -> datetime:
    return START + timedelta(seconds=float(seconds))


def run_cell(conn, vectors: np.ndarray, args: list[dict], plan: str, truth: list[list[str]] | None = None, **options):
    latencies, answers, passing, plans = [], [], [], set()
    for vector, filter_args in zip(vectors, args):
        started = time.perf_counter_ns()
        result = memory.retrieve_as_of(conn, vector, k=K, plan=plan, table=TABLE, **filter_args, **options)
        latencies.append(time.perf_counter_ns() - started)
        answers.append(result.ids)
        plans.add(result.plan)
        if result.passing is not None:
            passing.append(result.passing)
    cell = {"plan": plan, **{k: v for k, v in options.items()}, "queries": len(args),
            "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99),
            "plans_used": sorted(plans)}
    if truth is not None:
        recalls = [len(set(a) & set(t)) / len(t) for a, t in zip(answers, truth) if t]
        cell["recall_at_10"] = round(float(np.mean(recalls)), 4)
        cell["min_recall"] = round(float(np.min(recalls)), 2)
        cell["same_order_as_exact"] = round(float(np.mean([a == t for a, t in zip(answers, truth)])), 3)
    return cell, answers


def passing_fraction(conn, args: list[dict], total: int) -> float:
    counts = []
    for filter_args in args[:50]:
        where, params = memory._filters(filter_args["before"], filter_args.get("symbols"), [], filter_args.get("window"))
        counts.append(memory.count_passing(conn, where, params, total + 1, TABLE))
    return round(float(np.mean(counts)) / total, 4)


def planner_uses_hnsw(conn, vector, filter_args, ef_search) -> bool:
    """Whether Postgres's plan for the hnsw query scans the HNSW index (it may prefer btree + sort)."""
    where, params = memory._filters(filter_args["before"], filter_args.get("symbols"), [], filter_args.get("window"))
    query = sql.SQL("EXPLAIN SELECT id FROM {t} WHERE {w} ORDER BY embedding <=> %(query)s LIMIT 10").format(
        t=sql.Identifier(TABLE), w=where)
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                     "set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
        plan = "\n".join(r[0] for r in conn.execute(query, {**params, "query": vector}))
    return "embedding_hnsw" in plan


def tune(conn, world, times_s, count, log) -> dict:
    """On the tuning queries (seed 1): the smallest ef_search reaching the recall goal (+ a margin) on the wide
    filter, then, over time windows of growing size, the largest number of passing rows where the exact plan
    is still the better one (faster, or hnsw at that ef_search misses the recall goal)."""
    queries = Queries(world, times_s, count, seed=1)
    wide = queries.filters["wide"]
    truth = run_cell(conn, queries.vectors, wide, "exact")[1]
    ef_rows = []
    for ef in EF_GRID:
        cell, _ = run_cell(conn, queries.vectors, wide, "hnsw", truth, ef_search=ef)
        ef_rows.append(cell)
        log(f"tune wide hnsw ef_search={ef}: recall {cell['recall_at_10']}, p99 {cell['p99_ms']} ms")
    # a margin over the goal: the reported queries are others, and recall varies between query sets
    good = [c for c in ef_rows if c["recall_at_10"] >= RECALL_GOAL + TUNING_MARGIN]
    ef_search = good[0]["ef_search"] if good else EF_GRID[-1]
    sweep = []
    for fraction in SWEEP_FRACTIONS:
        args = queries.window_filter(fraction)
        exact, truth = run_cell(conn, queries.vectors, args, "exact")
        hnsw, _ = run_cell(conn, queries.vectors, args, "hnsw", truth, ef_search=ef_search)
        rows = int(passing_fraction(conn, args, len(times_s)) * len(times_s))
        sweep.append({"fraction": fraction, "passing_rows": rows, "exact_p50_ms": exact["p50_ms"],
                      "exact_p99_ms": exact["p99_ms"], "hnsw_p50_ms": hnsw["p50_ms"], "hnsw_p99_ms": hnsw["p99_ms"],
                      "hnsw_recall_at_10": hnsw["recall_at_10"]})
        log(f"tune sweep {fraction:.2%} (~{rows} rows): exact p99 {exact['p99_ms']} ms; hnsw p99 {hnsw['p99_ms']} ms, "
            f"recall {hnsw['recall_at_10']}")
    # hnsw wins a swept size only if it is faster at the median (p50: stable on a shared machine, where
    # p99 follows the neighbours' load) AND reaches the recall goal; exact (always right) everywhere else.
    # The threshold is the largest size exact wins.
    exact_ok = [s for s in sweep if s["exact_p50_ms"] <= s["hnsw_p50_ms"] or s["hnsw_recall_at_10"] < RECALL_GOAL]
    threshold = max((s["passing_rows"] for s in exact_ok), default=memory.EXACT_MAX_ROWS)
    return {"queries": count, "seed": 1, "ef_sweep_wide": ef_rows, "selectivity_sweep": sweep,
            "chosen": {"ef_search": ef_search, "exact_max_rows": threshold}}


def report(conn, world, times_s, count, ef_search, exact_max_rows, log) -> list[dict]:
    queries = Queries(world, times_s, count, seed=2)
    rows = []
    for name, args in queries.filters.items():
        fraction = passing_fraction(conn, args, len(times_s))
        exact, truth = run_cell(conn, queries.vectors, args, "exact")
        cells = [exact]
        for ef in EF_GRID:
            cell, _ = run_cell(conn, queries.vectors, args, "hnsw", truth, ef_search=ef)
            cell["planner_uses_hnsw_index"] = planner_uses_hnsw(conn, queries.vectors[0], args[0], ef)
            cells.append(cell)
        auto, _ = run_cell(conn, queries.vectors, args, "auto", truth, ef_search=ef_search, exact_max_rows=exact_max_rows)
        cells.append(auto)
        exact["recall_at_10"] = 1.0
        for cell in cells:
            cell.update(filter=name, passing_fraction=fraction)
            rows.append(cell)
            log(f"{name:14s} {cell['plan']:5s} ef={str(cell.get('ef_search', '-')):4s} recall "
                f"{cell.get('recall_at_10', 1.0):.4f} p50 {cell['p50_ms']:6.2f} ms p99 {cell['p99_ms']:6.2f} ms")
    return rows


def table(rows: list[dict]) -> str:
    # used: the plan each query took (auto's choice); graph: whether Postgres's plan for the hnsw query
    # scans the HNSW index, for the first query of the cell (on a selective filter it may prefer btree/GIN + sort:
    # exact)
    lines = [f"{'filter':14s} {'pass':>6s} {'plan':5s} {'ef_search':>9s} {'recall@10':>9s} {'p50 ms':>7s} {'p99 ms':>7s}"
             "  used   graph"]
    for r in rows:
        graph = {True: "yes", False: "no"}.get(r.get("planner_uses_hnsw_index"), "-")
        lines.append(f"{r['filter']:14s} {r['passing_fraction']:6.2%} {r['plan']:5s} {str(r.get('ef_search', '-')):>9s} "
                     f"{r.get('recall_at_10', 1.0):9.4f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f}  "
                     f"{','.join(r['plans_used']):6s} {graph}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="queries per cell (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch table (default: drop it)")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept scratch table of the same size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    log = (lambda m: print(m, file=sys.stderr, flush=True))

    from streams.analyst.embeddings import embed

    texts, real = sentences()
    started = time.perf_counter()
    topics = embed(texts)
    embed_s = time.perf_counter() - started
    log(f"embedded {len(texts)} sentences ({real} real) in {embed_s:.1f} s")
    world = World(topics, texts)
    conn = memory.connect(get_settings().database_url)
    machine = (f"{platform.machine()}, PostgreSQL {conn.info.server_version // 10000}, pgvector "
               + conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0])
    try:
        if args.reuse:
            build = {"items": args.items, "reused": True}
        else:
            log(f"loading {args.items} items into {TABLE} and building its indexes ...")
            build = build_table(conn, world, args.items)
            log(f"built: {build}")
        times_s = world.draw(args.items, seed=0)[2]
        tuning = tune(conn, world, times_s, args.queries, log)
        chosen = tuning["chosen"]
        rows = report(conn, world, times_s, args.queries, chosen["ef_search"], chosen["exact_max_rows"], log)
    finally:
        if not args.keep:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(TABLE)))
        conn.close()
    autos = [r for r in rows if r["plan"] == "auto"]
    result = {
        "benchmark": "retrieval_as_of",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "goal": f"recall@10 >= {RECALL_GOAL} and p99 <= {P99_GOAL_MS} ms for the wide and the narrow filters",
        "data": {"sentences": len(texts), "real_sentences": real, "embed_s": round(embed_s, 1), **build},
        "k": K,
        "tuning": tuning,
        "module_constants": {"EF_SEARCH": memory.EF_SEARCH, "EXACT_MAX_ROWS": memory.EXACT_MAX_ROWS},
        "rule": {"ef_search": chosen["ef_search"], "exact_max_rows": chosen["exact_max_rows"]},
        "results": rows,
        "goal_met": all(r["recall_at_10"] >= RECALL_GOAL and r["p99_ms"] <= P99_GOAL_MS for r in autos),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(table(rows))
    print(f"rule: exact when <= {chosen['exact_max_rows']} rows pass, else hnsw with ef_search {chosen['ef_search']} "
          f"(module: EF_SEARCH={memory.EF_SEARCH}, EXACT_MAX_ROWS={memory.EXACT_MAX_ROWS}); goal met: {result['goal_met']}")


if __name__ == "__main__":
    main()
