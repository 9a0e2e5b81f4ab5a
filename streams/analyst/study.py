"""An event study on a news corpus: the mean return after items the scorer calls positive vs negative.

For an item about a symbol, published at time p: the base is the close of the last trading day whose
date is at or before p's date (an item published during or after that session is known by its
close, so a trader could act there), and the k-day return is close[base + k trading days] / base - 1,
for k = 1 and 5. Items whose base or horizon falls outside the bars are left out (counted). Labels come
from the classifier alone (the item's text, no context), so the study does not depend on the order in
which the items were replayed. Means come with their standard errors and a Welch t statistic for the
positive-minus-negative difference: small corpora mostly show nothing, and the study says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

HORIZONS = (1, 5)


@dataclass(frozen=True)
class Event:
    symbol: str
    published_us: int
    label: str
    returns: dict[int, float]


def _stats(values: list[float]) -> dict:
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "stderr": None}
    mean = float(np.mean(values))
    stderr = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"n": n, "mean": mean, "stderr": stderr}


def welch_t(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    return float((np.mean(a) - np.mean(b)) / math.sqrt(va + vb)) if va + vb > 0 else None


def events(items: list[dict], labels: list[str], series_by_symbol: dict) -> tuple[list[Event], int]:
    """(events with their forward returns, number of (item, symbol) pairs left out)."""
    out, left_out = [], 0
    for item, label in zip(items, labels):
        published = np.datetime64(item["ts"].replace(tzinfo=None), "us")
        day = published.astype("datetime64[D]")
        for symbol in item["symbols"]:
            series = series_by_symbol.get(symbol)
            if series is None:
                left_out += 1
                continue
            days = series.dates.astype("datetime64[D]")
            base = int(np.searchsorted(days, day, side="right")) - 1
            if base < 0 or base + max(HORIZONS) >= len(days):
                left_out += 1
                continue
            close = series.close
            out.append(Event(symbol, int(published.astype(np.int64)), label,
                             {k: float(close[base + k] / close[base] - 1.0) for k in HORIZONS}))
    return out, left_out


def summarise(found: list[Event], left_out: int) -> dict:
    result: dict = {"events": len(found), "left_out": left_out, "horizons": {}}
    for k in HORIZONS:
        by_label = {label: [e.returns[k] for e in found if e.label == label]
                    for label in ("positive", "neutral", "negative")}
        result["horizons"][f"{k}d"] = {
            **{label: _stats(values) for label, values in by_label.items()},
            "positive_minus_negative": (None if not by_label["positive"] or not by_label["negative"] else
                                        float(np.mean(by_label["positive"]) - np.mean(by_label["negative"]))),
            "welch_t": welch_t(by_label["positive"], by_label["negative"]),
        }
    return result


def run_study(items: list[dict], series: list, scorer) -> dict:
    """The study of `items` (NewsItem records with symbols) against `series` (BarSeries)."""
    from streams.analyst.embeddings import news_text

    texts = [news_text(item) for item in items]
    labels = [score.label for score in scorer.score_texts(texts)] if texts else []
    found, left_out = events(items, labels, {s.symbol: s for s in series})
    summary = summarise(found, left_out)
    summary["scorer"] = scorer.version
    summary["items"] = len(items)
    return summary
