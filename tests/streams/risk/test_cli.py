from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ops.cli import cli

from tests.risk_core.helpers import random_walk


@pytest.fixture
def csv_file(tmp_path):
    o, h, l, c, v = random_walk(400, seed=11)
    dates = np.datetime64("2020-01-01") + np.arange(400)
    path = tmp_path / "bars.csv"
    with path.open("w") as fh:
        fh.write("date,open,high,low,close,volume\n")
        for row in zip(dates, o, h, l, c, v):
            fh.write(",".join(str(x) for x in row) + "\n")
    return path, (o, h, l, c, v)


def test_backtest_csv_json_matches_engine(csv_file):
    import risk_core as rc

    path, (o, h, l, c, v) = csv_file
    out = CliRunner().invoke(cli, ["backtest", "--csv", str(path), "--strategy", "sma", "--fast", "5", "--slow", "20",
                                   "--fee-bps", "3", "--slippage-bps", "1", "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    # the fixture's bars fall on every calendar day, weekends included
    assert payload["periods_per_year"] == 365 and "7 days a week" in payload["periods_per_year_basis"]
    want = rc.backtest(o, c, high=h, low=l, volume=v, fast=5, slow=20, fee_bps=3, slippage_bps=1,
                       periods_per_year=365).stats
    for key in ("final_equity", "total_return", "sharpe", "max_drawdown"):
        assert payload[key] == pytest.approx(getattr(want, key), rel=1e-12)
    assert payload["trades"] == want.num_trades and payload["bars"] == 400


def test_backtest_table_and_plot(csv_file, tmp_path):
    path, _ = csv_file
    png = tmp_path / "chart.png"
    out = CliRunner().invoke(cli, ["backtest", "--csv", str(path), "--strategy", "momentum", "--plot", str(png)])
    assert out.exit_code == 0, out.output
    assert "sharpe" in out.output and "max_drawdown" in out.output
    if png.exists():  # matplotlib present
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        pytest.skip("matplotlib not installed")


def test_backtest_bundled_data():
    out = CliRunner().invoke(cli, ["backtest", "--json", "--dataset", "stocks", "--symbol", "MSFT"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["symbol"] == "MSFT" and payload["bars"] > 1000 and "final_equity" in payload


@pytest.mark.parametrize("args, message", [
    (["--csv", "/nonexistent/bars.csv"], "no such file"),
    (["--dataset", "stocks", "--symbol", "TSLA"], "no symbol(s) TSLA"),
    (["--fast", "50", "--slow", "10"], "slow must be > fast"),
    (["--fee-bps", "-1"], "fee_bps"),
    (["--dataset", "nope"], "nope"),
])
def test_backtest_errors_are_one_line(args, message):
    out = CliRunner().invoke(cli, ["backtest", *args])
    assert out.exit_code == 1
    assert message in out.output
    assert "Traceback" not in out.output


def test_bad_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close\n2020-01-01,1,1,1,1\n")
    out = CliRunner().invoke(cli, ["backtest", "--csv", str(bad)])
    assert out.exit_code == 1 and "missing column(s) volume" in out.output


def test_csv_with_several_symbols(tmp_path):
    o, h, l, c, v = random_walk(300, seed=4)
    path = tmp_path / "two.csv"
    with path.open("w") as fh:
        fh.write("date,symbol,open,high,low,close,volume\n")
        for i, row in enumerate(zip(o, h, l, c, v)):
            for sym, scale in (("AAA", 1.0), ("BBB", 2.0)):
                fh.write(f"2021-01-01T{i // 60:02d}:{i % 60:02d}:00,{sym}," + ",".join(str(x * scale) for x in row[:4])
                         + f",{row[4]}\n")
    out = CliRunner().invoke(cli, ["backtest", "--csv", str(path), "--json"])
    assert out.exit_code == 1 and "several symbols (AAA, BBB)" in out.output and "--symbol" in out.output
    out = CliRunner().invoke(cli, ["backtest", "--csv", str(path), "--symbol", "bbb", "--json", "--fast", "3",
                                   "--slow", "9"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["symbol"] == "BBB" and payload["bars"] == 300
    assert payload["start"] == "2021-01-01T00:00:00" and payload["end"] == "2021-01-01T04:59:00"


def test_backtest_reads_bars_through_the_one_market_data_reader(csv_file):
    from streams.errors import DataError
    from streams.market import datasets
    from streams.risk import cli as backtest_cli

    path, (o, h, l, c, v) = csv_file
    bars = backtest_cli.read_csv(path)
    want = datasets.load_csv(path)[0]
    assert isinstance(bars, datasets.BarSeries) and bars.symbol == want.symbol == "BARS"
    np.testing.assert_array_equal(bars.close, c)
    np.testing.assert_array_equal(bars.dates, want.dates)
    sp = backtest_cli.load_dataset("sp500")
    assert sp.symbol == "SP500" and len(sp) == len(datasets.load_bars("sp500", "SP500"))
    assert backtest_cli.load_dataset("stocks").symbol == "AAPL"
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        backtest_cli.load_dataset("nope")
    with pytest.raises(DataError, match="no such file"):
        backtest_cli.read_csv(path.parent / "missing.csv")


def write_bars(path, dates, close):
    close = np.asarray(close, dtype=np.float64)
    open_ = np.r_[close[0], close[:-1]]
    with path.open("w") as fh:
        fh.write("date,open,high,low,close,volume\n")
        for d, o, c in zip(dates, open_, close):
            fh.write(f"{np.datetime_as_string(d, unit='s')}Z,{o},{max(o, c)},{min(o, c)},{c},1\n")
    return path


def fx_year_csv(tmp_path):
    """A year of 24x5 hourly FX bars (Sunday 22:00 to Friday 22:00 UTC), drifting up about 11%."""
    import pandas as pd

    hours = pd.date_range("2021-01-03 22:00", "2022-01-02 22:00", freq="h", inclusive="left")
    week_hour = hours.day_of_week * 24 + hours.hour
    hours = hours[(week_hour >= 6 * 24 + 22) | (week_hour < 4 * 24 + 22)]
    steps = np.random.default_rng(5).normal(0.104 / len(hours), 0.0008, len(hours))
    return write_bars(tmp_path / "eurusd.csv", hours.to_numpy("datetime64[s]"), 1.2 * np.exp(np.cumsum(steps)))


def test_a_year_of_hourly_fx_bars_is_annualised_as_one_year(tmp_path):
    import risk_core as rc

    path = fx_year_csv(tmp_path)
    args = ["backtest", "--csv", str(path), "--strategy", "momentum", "--lookback", "1000", "--json"]
    payload = json.loads(CliRunner().invoke(cli, args).output)
    assert payload["periods_per_year"] == 6240 and "24x5" in payload["periods_per_year_basis"]
    assert payload["bars"] == 6240 and payload["total_return"] > 0.05
    # one year of bars: a year's return is the total return (not a 25th of it, as with 252 a year)
    assert payload["annualized_return"] == pytest.approx(payload["total_return"], rel=1e-3)
    daily = json.loads(CliRunner().invoke(cli, args + ["--periods-per-year", "252"]).output)
    assert daily["periods_per_year"] == 252 and daily["periods_per_year_basis"] == "252 (--periods-per-year)"
    assert daily["annualized_return"] < payload["total_return"] / 20
    assert payload["volatility"] == pytest.approx(daily["volatility"] * np.sqrt(6240 / 252), rel=1e-9)
    assert payload["sharpe"] == pytest.approx(
        rc.equity_stats(rc.backtest(*_ohlc(path), strategy="momentum", lookback=1000).equity, 100_000.0, 6240).sharpe)
    table = CliRunner().invoke(cli, ["backtest", "--csv", str(path)]).output
    assert "periods per year: 6240 (inferred: 1h bars, 24 a day, 260 days a year, 24 h on weekdays (24x5))" in table


def _ohlc(path):
    from streams.market.datasets import load_csv

    [bars] = load_csv(path)
    return bars.open, bars.close


def test_backtest_on_closes_that_stay_flat_for_long_runs(tmp_path):
    from tests import fixtures

    frame = fixtures.ohlcv(700, 3)
    for start, end in ((200, 320), (450, 560)):
        frame.loc[start:end, ["open", "high", "low", "close"]] = frame.loc[start - 1, "close"]
    frame.to_csv(tmp_path / "flat.csv", index=False)
    constant = frame.assign(open=50.0, high=50.0, low=50.0, close=50.0)
    constant.to_csv(tmp_path / "constant.csv", index=False)
    for name in ("flat.csv", "constant.csv"):
        for extra in ([], ["--sizing", "vol_target"], ["--strategy", "breakout", "--direction", "long_short"]):
            out = CliRunner().invoke(cli, ["backtest", "--csv", str(tmp_path / name), "--json", *extra])
            assert out.exit_code == 0, out.output
            payload = json.loads(out.output, parse_constant=lambda c: pytest.fail(f"{c} in {name} {extra}"))
            assert payload["bars"] == 700 and payload["periods_per_year"] == 252
