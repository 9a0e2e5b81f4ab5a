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
    want = rc.backtest(o, c, high=h, low=l, volume=v, fast=5, slow=20, fee_bps=3, slippage_bps=1).stats
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
