"""`algo analyst train|evaluate|score|backfill|feed|replay`: the Analyst from the command line."""
from __future__ import annotations

import click


def _settings():
    from streams.settings import get_settings

    return get_settings()


@click.group()
def analyst() -> None:
    """The Analyst: news sentiment with as-of retrieval over pgvector, and replayable votes."""


DEFAULT_SCORER_OUT = "models/analyst-scorer"  # = scorer.DEFAULT_OUT, kept here so --help needs no import


@analyst.command("train")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Labelled CSV (text,label[,split]); trains on split=train rows, or all rows without a split "
                   "column. Default: the shipped streams/analyst/data/sentences.csv.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the CV folds and the solver.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=DEFAULT_SCORER_OUT, show_default=True,
              help="Where to write scorer.safetensors + scorer.json. The shipped scorer "
                   "(streams/analyst/data/scorer) is rebuilt only when --out names it.")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as one JSON object.")
def train_command(csv_path: str | None, seed: int, out_dir: str, as_json: bool) -> None:
    """Train the sentiment scorer (MiniLM embedding + FinVADER lexicon -> logistic regression)."""
    import json

    from streams.analyst.scorer import train

    scorer, report = train(csv_path, seed=seed, out=out_dir)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(f"trained {report.version} on {report.n_train} rows "
               + ", ".join(f"{label} {count}" for label, count in report.counts.items()))
    click.echo(f"cross-validation ({scorer.metadata['cv_folds']} stratified folds, train rows only):")
    for c, figures in report.cv.items():
        mark = "  <- chosen" if float(c) == report.best_c else ""
        click.echo(f"  C={float(c):<6g} accuracy {figures['accuracy_mean']:.4f} +/- {figures['accuracy_std']:.4f}"
                   f"  macro-F1 {figures['macro_f1_mean']:.4f} +/- {figures['macro_f1_std']:.4f}{mark}")
    click.echo(f"wrote {out_dir}/scorer.safetensors and scorer.json (version {report.version})")


def _confusion_lines(result: dict) -> list[str]:
    labels = result["confusion"]["labels"]
    width = max(len(label) for label in labels) + 2
    lines = ["confusion matrix (rows: true label, columns: predicted)",
             " " * width + "".join(f"{label:>{width}}" for label in labels)]
    for label, row in zip(labels, result["confusion"]["matrix"]):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    return lines


@analyst.command("evaluate")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), required=True,
              help="Labelled CSV with columns text,label (positive/negative/neutral, any case); extra columns ignored.")
@click.option("--split", type=click.Choice(["test", "train", "all"]), default=None,
              help="Rows to score when the CSV has a split column (default: test); without one, all rows.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="A scorer directory from `algo analyst train` (default: the shipped scorer).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def evaluate_command(csv_path: str, split: str | None, model_dir: str | None, as_json: bool) -> None:
    """Accuracy, macro-F1, per-class precision/recall and the confusion matrix on a labelled CSV."""
    import json

    from streams.analyst.scorer import Scorer, evaluate, read_labelled_csv, select_split

    rows, has_split = read_labelled_csv(csv_path)
    chosen_split = (split or "test") if has_split else "all"
    rows = select_split(rows, has_split, chosen_split)
    scorer = Scorer.load(model_dir)
    result = evaluate(scorer, rows)
    result["split"] = chosen_split
    result["csv"] = csv_path
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{csv_path} ({chosen_split} rows: {result['n']}), model {result['model_version']}")
    click.echo(f"accuracy {result['accuracy']:.4f}   macro-F1 {result['macro_f1']:.4f}")
    click.echo(f"{'label':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for label, figures in result["per_class"].items():
        click.echo(f"{label:<10}{figures['precision']:>10.4f}{figures['recall']:>10.4f}{figures['f1']:>10.4f}"
                   f"{figures['support']:>10d}")
    for line in _confusion_lines(result):
        click.echo(line)


@analyst.command("score")
@click.argument("text")
@click.option("--model", "model_dir", type=click.Path(file_okay=False), default=None,
              help="A scorer directory (default: the shipped scorer).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def score_command(text: str, model_dir: str | None, as_json: bool) -> None:
    """Sentiment of one sentence: label, confidence, probabilities and the evidence behind them."""
    import json

    from streams.analyst.scorer import Scorer
    from streams.errors import AlgoError

    if not text.strip():
        raise AlgoError("score needs a non-empty TEXT")
    scorer = Scorer.load(model_dir)
    score = scorer.score_texts([text])[0]
    if as_json:
        click.echo(json.dumps({**score.as_dict(), "model_version": scorer.version}))
        return
    click.echo(f"{score.label} (confidence {score.confidence:.3f}, polarity {score.polarity:+.3f})")
    click.echo("probabilities: " + ", ".join(f"{label} {p:.3f}" for label, p in score.probabilities.items()))
    words = score.evidence["lexicon_words"]
    click.echo(f"lexicon (VADER + FinVADER): compound {score.evidence['lexicon_compound']:+.4f}; words: "
               + (", ".join(f"{word} {valence:+g}" for word, valence in words) if words else "none matched"))
    click.echo(f"embedding: {score.evidence['embedding_model']}; model {scorer.version}")


@analyst.command("replay")
@click.argument("signal_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def replay_command(signal_id: str, as_json: bool) -> None:
    """Re-derive a recorded analyst vote offline from its record and say whether it matches."""
    import json
    import sys

    from streams.analyst.service import replay_vote

    report = replay_vote(_settings(), signal_id)
    if as_json:
        click.echo(json.dumps({"signal_id": report.signal_id, "matches": report.matches,
                               "differences": report.differences, "recorded": report.recorded["signal"],
                               "rederived": report.rederived}))
    else:
        vote = report.rederived["signal"]
        click.echo(f"signal {signal_id}: {vote['action']} {report.recorded['inputs']['symbol']} "
                   f"confidence {vote['confidence']:.4f}")
        click.echo(f"  {vote['rationale']}")
        click.echo(f"  inputs: news:{report.recorded['inputs']['news_id']} + "
                   f"{len(report.recorded['inputs']['context'])} retrieved item(s); versions "
                   + ", ".join(f"{k}={v}" for k, v in sorted(report.recorded['versions'].items())))
        if report.matches:
            click.echo("  re-derived: matches the record bit for bit")
        else:
            click.echo("  re-derived: DIFFERS")
            for line in report.differences:
                click.echo(f"    {line}")
    sys.exit(0 if report.matches else 2)


@analyst.command("backfill")
@click.option("--news", "news_path", type=click.Path(dir_okay=False), default=None,
              help="News file (CSV or JSON lines, as for `algo replay --news`); default: the shipped demo corpus.")
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True,
              help="Items embedded per batch.")
def backfill_command(news_path: str | None, batch: int) -> None:
    """Embed a news corpus into Postgres (news.embedding); rows that have an embedding are skipped."""
    from streams.analyst.memory import backfill, connect
    from streams.analyst.resources import demo_corpus
    from streams.market.news import load_news
    from streams.outages import postgres_errors

    from streams.analyst.service import with_resolved_symbols

    path = news_path or str(demo_corpus())
    items = with_resolved_symbols(load_news(path))
    conn = connect(_settings().database_url)
    try:
        with postgres_errors():
            report = backfill(conn, items, batch=batch)
    finally:
        conn.close()
    click.echo(f"backfill: {report.embedded} embedded, {report.skipped} already embedded, "
               f"{report.total} items in {path}")


@analyst.command("feed")
@click.argument("urls", nargs=-1, required=True)
@click.option("--interval", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Poll every feed once, then stop (exit 1 if a feed failed).")
@click.option("--source", default=None, help="Source name for the items (default: the feed's title).")
def feed_command(urls: tuple[str, ...], interval: float, once: bool, source: str | None) -> None:
    """Poll RSS/Atom feeds and publish each new entry once to news.items (symbols left to the analyst)."""
    import time

    from streams.analyst.feeds import FeedPoller, NewsPublisher, check_urls
    from streams.errors import AlgoError

    checked = check_urls(urls)  # before connecting: a typo is reported without waiting for Kafka
    with FeedPoller(checked, source=source) as poller, NewsPublisher(_settings()) as publish:
        try:
            while True:
                results = poller.poll(publish)
                for result in results:
                    click.echo(f"feed {result.describe()}", err=result.error is not None)
                if once:
                    failed = [r for r in results if r.error is not None]
                    if failed:
                        raise AlgoError(f"{len(failed)} of {len(results)} feed(s) failed: {failed[0].describe()}")
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


@analyst.command("event-study")
@click.option("--news", "news_path", type=click.Path(dir_okay=False), default=None,
              help="News file (CSV or JSON lines; default: the demo corpus).")
@click.option("--dataset", default="stocks", show_default=True, help="Bundled bars the returns come from.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Or an OHLCV CSV (date,open,high,low,close,volume,symbol) instead of --dataset.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write the JSON here (e.g. benchmarks/results/event_study.json).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def event_study_command(news_path: str | None, dataset: str, csv_path: str | None, out: str | None,
                        as_json: bool) -> None:
    """Mean next-day and next-5-day return after items the scorer calls positive vs negative."""
    import json
    from pathlib import Path

    from streams.analyst.resources import demo_corpus
    from streams.analyst.scorer import Scorer
    from streams.analyst.study import run_study
    from streams.market.datasets import load_csv, load_dataset
    from streams.market.news import load_news

    items = load_news(news_path or demo_corpus())
    series = load_csv(csv_path) if csv_path else load_dataset(dataset)
    summary = run_study(items, series, Scorer.load(_settings().analyst.scorer_dir or None))
    summary["news"] = str(news_path or "the demo corpus")
    summary["bars"] = csv_path or f"dataset:{dataset}"
    if out:
        Path(out).write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{summary['events']} (item, symbol) events from {summary['items']} items "
               f"({summary['left_out']} left out: no bars around them); scorer {summary['scorer']}")
    for horizon, row in summary["horizons"].items():
        parts = []
        for label in ("positive", "neutral", "negative"):
            stats = row[label]
            mean = "n/a" if stats["mean"] is None else f"{stats['mean']:+.2%}"
            err = "" if stats["stderr"] is None else f" ± {stats['stderr']:.2%}"
            parts.append(f"{label} {mean}{err} (n={stats['n']})")
        diff = row["positive_minus_negative"]
        t = row["welch_t"]
        click.echo(f"  {horizon}: " + "; ".join(parts) +
                   (f"; positive - negative {diff:+.2%}, Welch t {t:.2f}" if diff is not None and t is not None else ""))
