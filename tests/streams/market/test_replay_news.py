"""`algo replay --news`: news interleaved with the ticks in event time (unit), and on the real stack."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.market.replay import NEWS_TOPIC, TOPIC, interleave
from tests.kafka_tools import ROOT, ends, read_from

UTC = timezone.utc
DAY1 = datetime(2004, 1, 14, tzinfo=UTC)


def tick(hour: float, day: int = 0) -> dict:
    return {"symbol": "AAPL", "ts": DAY1 + timedelta(days=day, hours=hour)}


def item(name: str, hour: float, day: int = 0) -> dict:
    return {"id": name, "ts": DAY1 + timedelta(days=day, hours=hour)}


def test_news_goes_out_once_the_clock_has_passed_its_time():
    ticks = [tick(14.5), tick(21), tick(14.5, day=1), tick(21, day=1)]
    news = [item("before", 9), item("at-a-tick", 21), item("overnight", 3, day=1), item("after", 23, day=1)]
    events = list(interleave(ticks, news))
    order = [e.key if e.topic == NEWS_TOPIC else e.record["ts"].strftime("%d %H:%M") for e in events]
    assert order == ["before", "14 14:30", "14 21:00", "at-a-tick", "overnight", "15 14:30", "15 21:00", "after"]
    assert [e.paced for e in events] == [True] * 7 + [False]  # nothing to wait for after the last tick
    assert {e.topic for e in events} == {TOPIC, NEWS_TOPIC}


def test_news_alone_keeps_its_pace_and_ticks_alone_are_unchanged():
    news = [item("a", 1), item("b", 2)]
    assert [(e.key, e.paced) for e in interleave([], news)] == [("a", True), ("b", True)]
    ticks = [tick(14.5), tick(21)]
    assert [e.record for e in interleave(ticks, [])] == ticks


def test_news_alone_with_bar_options_is_a_usage_error(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("published_at,headline,source\n2004-01-14,A,wire\n")
    result = CliRunner().invoke(cli, ["replay", "--news", str(path), "--symbols", "AAPL"])
    assert result.exit_code == 2 and "--symbols and --limit select bars" in result.output


def test_bad_news_file_is_one_line(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("published_at,headline,source\nyesterday,A,wire\n")
    result = CliRunner().invoke(cli, ["replay", "--news", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {path}, line 2: bad published_at 'yesterday' (ISO 8601 expected, e.g. 2004-01-14 or "
        "2004-01-14T21:05:00Z)"]


# --- integration: the real stack --------------------------------------------------------------------------


@pytest.mark.integration
def test_replay_interleaves_news_with_ticks_and_ids_are_stable(provisioned, tmp_path):
    symbol = f"N{uuid.uuid4().hex[:6].upper()}"
    marker = uuid.uuid4().hex[:8]
    bars = tmp_path / f"{symbol.lower()}.csv"
    bars.write_text("date,open,high,low,close,volume\n" + "".join(
        f"2004-01-{14 + d},{10 + d},{11 + d},{9 + d},{10.5 + d},1000\n" for d in range(4)))  # ticks 14:30..21:00
    news = tmp_path / "news.csv"
    news.write_text("published_at,symbols,headline,summary,source,url\n"
                    f"2004-01-20T12:00:00,{symbol},{marker} after the last tick,,wire,\n"
                    f"2004-01-13,{symbol},{marker} before the first tick,,wire,\n"
                    f"2004-01-15T03:00:00Z,{symbol},{marker} overnight,It moved,wire,https://example.org/n\n"
                    f"2004-01-16T21:00:00,{symbol},{marker} at the close,,wire,\n")
    speed = 86400 * 4.0  # a day in 0.25 s: far more than the broker's millisecond timestamps can blur
    runs = []
    for _ in range(2):
        tick_starts, news_starts = ends(provisioned, TOPIC), ends(provisioned, NEWS_TOPIC)
        out = subprocess.run([sys.executable, "-m", "ops.cli", "replay", "--csv", str(bars), "--news", str(news),
                              "--speed", str(speed), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert (summary["ticks"], summary["news"]) == (16, 4)
        ticks = [(ms, r) for ms, r in read_from(provisioned, tick_starts) if r["symbol"] == symbol]
        items = [(ms, r) for ms, r in read_from(provisioned, news_starts) if r["headline"].startswith(marker)]
        assert len(ticks) == 16 and len(items) == 4
        runs.append((ticks, items))

    for ticks, items in runs:
        by_headline = {r["headline"].removeprefix(marker + " "): (ms, r) for ms, r in items}
        first_tick_ms, last_tick_ms = min(ms for ms, _ in ticks), max(ms for ms, _ in ticks)
        first_tick_ts = min(r["ts"] for _, r in ticks)
        for name, (ms, record) in by_headline.items():
            assert record["symbols"] == [symbol]
            before = [t_ms for t_ms, t in ticks if t["ts"] <= record["ts"]]  # at equal times the tick first
            after = [t_ms for t_ms, t in ticks if t["ts"] > record["ts"]]
            assert all(t_ms <= ms for t_ms in before), name
            assert all(ms <= t_ms for t_ms in after), name
            if before and after:  # paced: not before the replay clock reaches its time (20 ms for timer slack)
                due_ms = first_tick_ms + (record["ts"] - first_tick_ts).total_seconds() * 1000 / speed
                assert ms >= due_ms - 20, name
        assert by_headline["before the first tick"][0] <= first_tick_ms
        assert by_headline["after the last tick"][0] >= last_tick_ms
        overnight = by_headline["overnight"][1]
        assert overnight["ts"] == datetime(2004, 1, 15, 3, tzinfo=UTC) and overnight["body"] == "It moved"
        assert overnight["url"] == "https://example.org/n"
    first, second = ([r["id"] for _, r in sorted(items, key=lambda p: p[1]["ts"])] for _, items in runs)
    assert first == second and len(set(first)) == 4


@pytest.mark.integration
def test_news_alone_publishes_only_news(provisioned, tmp_path):
    marker = uuid.uuid4().hex[:8]
    news = tmp_path / "news.jsonl"
    news.write_text("".join(json.dumps({"published_at": f"2004-02-0{d}", "symbols": ["ibm"], "headline": f"{marker} {d}",
                                        "source": "wire"}) + "\n" for d in (3, 1, 2)))
    news_starts = ends(provisioned, NEWS_TOPIC)
    result = CliRunner().invoke(cli, ["replay", "--news", str(news)])
    assert result.exit_code == 0, result.output
    # stdout alone: a replay that takes over half a second also draws its progress bar on stderr
    assert re.fullmatch(r"published 3 news items in \d+\.\d\d s to news.items", result.stdout.strip())
    items = [r for _, r in read_from(provisioned, news_starts) if r["headline"].startswith(marker)]
    assert sorted(r["headline"] for r in items) == [f"{marker} 1", f"{marker} 2", f"{marker} 3"]
    assert all(r["symbols"] == ["IBM"] for r in items)
