"""Builds ../sentences.csv from the hand-written batch files in this folder (mechanical work only).

Each batch_NN.txt line is `p|text`, `n|text` or `u|text` (positive, negative, neutral); `#` lines are
comments. This script parses them, drops exact duplicates (case- and whitespace-insensitive; the
first occurrence wins), shuffles with a fixed seed and assigns a stratified held-out `test` split
(TEST_FRACTION of each label) before any model is trained. It writes nothing but the CSV.

    .venv/bin/python streams/analyst/data/sentences_src/build.py
"""
from __future__ import annotations

import csv
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "sentences.csv"
SEED = 20261202
TEST_FRACTION = 0.22
LABELS = {"p": "positive", "n": "negative", "u": "neutral"}


def read_batches() -> list[tuple[str, str, str]]:
    rows, seen = [], set()
    for path in sorted(HERE.glob("batch_*.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            code, sep, text = line.partition("|")
            if not sep or code not in LABELS or not text.strip():
                sys.exit(f"{path.name}:{number}: expected p|, n| or u| followed by a sentence")
            key = re.sub(r"\s+", " ", text.strip().lower())
            if key in seen:
                continue
            seen.add(key)
            rows.append((text.strip(), LABELS[code], path.stem))
    return rows


def main() -> None:
    rows = read_batches()
    rng = random.Random(SEED)
    by_label: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    out = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_test = round(len(group) * TEST_FRACTION)
        out += [(text, label, "test" if i < n_test else "train") for i, (text, _, _) in enumerate(group)]
    rng.shuffle(out)
    with OUTPUT.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        writer.writerows(out)
    counts: dict[tuple[str, str], int] = {}
    for _, label, split in out:
        counts[(label, split)] = counts.get((label, split), 0) + 1
    print(f"wrote {len(out)} sentences to {OUTPUT}")
    for (label, split), count in sorted(counts.items()):
        print(f"  {label:8s} {split:5s} {count}")


if __name__ == "__main__":
    main()
