"""The event study: forward returns from the close of the item's day, by label, with what was left out."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.analyst import study
from streams.market.datasets import BarSeries


def series(symbol: str, closes: list[float], start: str = "2005-01-03") -> BarSeries:
    dates = np.array([np.datetime64(start) + np.timedelta64(i, "D") for i in range(len(closes))], dtype="datetime64[us]")
    c = np.asarray(closes, dtype=float)
    return BarSeries(symbol, dates, c, c, c, c, np.ones_like(c))


def item(day: int, symbols=("AAPL",), hour: int = 21) -> dict:
    return {"id": f"n{day}", "ts": datetime(2005, 1, 3 + day, hour, tzinfo=timezone.utc), "symbols": list(symbols),
            "headline": "h", "body": ""}


def test_returns_are_measured_from_the_close_of_the_items_day():
    closes = [100, 110, 121, 100, 90, 80, 70, 60, 50, 40]
    found, left_out = study.events([item(1)], ["positive"], {"AAPL": series("AAPL", closes)})
    assert left_out == 0
    [event] = found
    assert event.returns[1] == pytest.approx(121 / 110 - 1)
    assert event.returns[5] == pytest.approx(70 / 110 - 1)


def test_items_without_bars_around_them_are_left_out_and_counted():
    closes = [100.0] * 8
    found, left_out = study.events([item(5), item(0, symbols=("MSFT",)), item(-1)], ["positive"] * 3,
                                   {"AAPL": series("AAPL", closes, start="2005-01-03")})
    assert found == [] and left_out == 3  # too near the end, no MSFT bars, before the first bar


def test_the_summary_compares_positive_and_negative_items():
    ups = [study.Event("A", 0, "positive", {1: r, 5: r}) for r in (0.01, 0.02, 0.03)]
    downs = [study.Event("A", 0, "negative", {1: r, 5: r}) for r in (-0.01, -0.02, -0.03)]
    summary = study.summarise(ups + downs, left_out=2)
    day = summary["horizons"]["1d"]
    assert summary["events"] == 6 and summary["left_out"] == 2
    assert day["positive"]["n"] == 3 and day["positive"]["mean"] == pytest.approx(0.02)
    assert day["positive_minus_negative"] == pytest.approx(0.04)
    assert day["welch_t"] > 4 and day["neutral"] == {"n": 0, "mean": None, "stderr": None}


def test_the_cli_runs_on_any_news_file_and_bars_csv(tmp_path):
    from tests import fixtures

    bars = fixtures.ohlcv(60, 3)
    bars["symbol"] = "AAPL"
    bars.to_csv(tmp_path / "bars.csv", index=False)
    (tmp_path / "news.csv").write_text(
        "published_at,symbols,headline,summary,source,url\n"
        "2005-01-10T21:00:00Z,AAPL,Apple profit soars past forecasts,Record quarter.,t,\n"
        "2005-02-01T21:00:00Z,AAPL,Apple warns of a sharp drop in sales,Shares slump.,t,\n")
    out = tmp_path / "study.json"
    result = CliRunner().invoke(cli, ["analyst", "event-study", "--news", str(tmp_path / "news.csv"),
                                      "--csv", str(tmp_path / "bars.csv"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["items"] == 2 and summary["events"] == 2 and json.loads(out.read_text()) == summary
    assert summary["horizons"]["1d"]["positive"]["n"] + summary["horizons"]["1d"]["negative"]["n"] >= 1
