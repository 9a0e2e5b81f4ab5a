"""Walk-forward evaluation: the splits never leak test bars into training, the baselines are
risk_core's figures, and `algo quant evaluate` keeps its interface (--seeds, --json, any CSV)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import risk_core as rc
from streams.quant import evaluate as quant_evaluate
from ops.cli import cli
from streams.market.datasets import load_csv
from streams.errors import ModelError
from streams.quant.env import EnvConfig
from streams.quant.evaluate import EvaluationConfig, evaluate, walk_forward_splits
from tests import fixtures


def test_splits_are_consecutive_expanding_and_cover_the_rest():
    folds = walk_forward_splits(1000, 61, 4, 0.5)
    assert [(f.train_end, f.test_start, f.test_end) for f in folds] == [
        (500, 500, 625), (625, 625, 750), (750, 750, 875), (875, 875, 1000)]
    with pytest.raises(ModelError, match="too few"):
        walk_forward_splits(150, 61, 4, 0.5)
    with pytest.raises(ModelError, match="folds"):
        walk_forward_splits(1000, 61, 0, 0.5)


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "syn.csv"
    fixtures.ohlcv(700, 21, drift=0.0005).to_csv(path, index=False)
    [bars] = load_csv(path)
    seen_train_lengths = []
    original = quant_evaluate.train_policy

    def spy(series, *args, **kwargs):
        seen_train_lengths.append(len(series[0]))
        return original(series, *args, **{**kwargs, "hyperparameters": {"n_steps": 128, "batch_size": 64,
                                                                         "n_epochs": 1}})

    quant_evaluate.train_policy = spy
    try:
        report = evaluate(bars, config=EvaluationConfig(seeds=2, folds=2, timesteps=256), source="csv:syn.csv")
    finally:
        quant_evaluate.train_policy = original
    return bars, report, seen_train_lengths


def test_every_model_is_trained_only_on_bars_before_its_test_window(small_report):
    _, report, lengths = small_report
    test_starts = [fold["test_start"] for fold in report["folds"]]
    assert lengths == test_starts * 2  # two seeds, each fold trained on exactly the bars before its window


def test_buy_and_hold_figures_are_risk_cores_on_the_test_windows(small_report):
    bars, report, _ = small_report
    config = EnvConfig()
    returns = []
    for fold in report["folds"]:
        start, end = fold["test_start"], fold["test_end"]
        result = rc.backtest(bars.open[start - 1:end], bars.close[start - 1:end], target=np.ones(end - start + 1),
                             **config.backtest_params())
        returns.append(result.equity[1:] / result.equity[:-1] - 1)
    chained = config.initial_capital * np.cumprod(np.concatenate([[1.0], 1 + np.concatenate(returns)]))
    expected = rc.equity_stats(chained, config.initial_capital)
    figures = report["baselines"]["buy_and_hold"]
    assert figures["sharpe"] == pytest.approx(expected.sharpe) and figures["max_drawdown"] == pytest.approx(
        expected.max_drawdown)
    assert figures["exposure"] == 1.0 and figures["fills"] == 2


def test_the_sma_baseline_starts_flat_at_the_window_and_trades_long_only(small_report):
    _, report, _ = small_report
    sma = report["baselines"]["sma_crossover"]
    assert 0.0 <= sma["exposure"] <= 1.0 and sma["turnover_per_year"] >= 0
    curve = report["curves"]["sma_crossover"]
    assert curve[0] == EnvConfig().initial_capital and len(curve) == report["out_of_sample"]["bars"] + 1


def test_the_report_gives_per_seed_figures_and_their_distribution(small_report):
    _, report, _ = small_report
    assert [run["seed"] for run in report["seeds"]] == [0, 1]
    for run in report["seeds"]:
        assert set(quant_evaluate.STAT_NAMES) <= set(run) and len(run["folds"]) == 2
    sharpe = [run["sharpe"] for run in report["seeds"]]
    assert report["distribution"]["sharpe"]["min"] == min(sharpe)
    assert report["distribution"]["sharpe"]["mean"] == pytest.approx(np.mean(sharpe))
    assert report["seeds_beating_buy_and_hold_sharpe"] == sum(
        s > report["baselines"]["buy_and_hold"]["sharpe"] for s in sharpe)


def test_cli_evaluate_on_any_ohlcv_csv_prints_one_json_object_and_writes_results(tmp_path):
    csv = tmp_path / "any.csv"
    fixtures.ohlcv(600, 5).to_csv(csv, index=False)
    out = tmp_path / "results"
    result = CliRunner().invoke(cli, ["quant", "evaluate", "--csv", str(csv), "--seeds", "5", "--folds", "2",
                                      "--timesteps", "256", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["seeds"]) == 5 and {"buy_and_hold", "sma_crossover"} == set(report["baselines"])
    assert "curves" not in report
    saved = json.loads((out / "quant-evaluate-any.json").read_text())
    assert len(saved["curves"]["seeds"]) == 5
    assert (out / "quant-evaluate-any.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_explains_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    short = tmp_path / "short.csv"
    fixtures.ohlcv(100, 1).to_csv(short, index=False)
    result = runner.invoke(cli, ["quant", "evaluate", "--csv", str(short), "--timesteps", "256"])
    assert result.exit_code != 0 and "too few" in result.output
    result = runner.invoke(cli, ["quant", "evaluate", "--dataset", "stocks"])
    assert result.exit_code == 2 and "pick one with --symbol" in result.output
    result = runner.invoke(cli, ["quant", "evaluate", "--seeds", "0"])
    assert result.exit_code == 2 and "--seeds" in result.output
    result = runner.invoke(cli, ["quant", "evaluate", "--csv", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_cli_evaluate_annualises_with_the_bars_periods_per_year(tmp_path):
    import pandas as pd

    # three US equity sessions of 6.5 h (14:30 .. 21:00 UTC) in minute bars
    first, *rest = [pd.date_range(f"{d.date()} 14:30", periods=390, freq="min")
                    for d in pd.bdate_range("2021-01-04", periods=3)]
    minutes = first.append(rest)
    frame = fixtures.ohlcv(len(minutes), 7)
    frame["date"] = minutes.strftime("%Y-%m-%dT%H:%M:%SZ")
    csv = tmp_path / "minutes.csv"
    frame.to_csv(csv, index=False)
    args = ["quant", "evaluate", "--csv", str(csv), "--seeds", "1", "--folds", "2", "--timesteps", "256",
            "--out", str(tmp_path / "out"), "--json"]
    inferred = json.loads(CliRunner().invoke(cli, args).output)
    assert inferred["periods_per_year"] == 390 * 252 and "1min bars, 390 a day" in inferred["periods_per_year_basis"]
    daily = json.loads(CliRunner().invoke(cli, args + ["--periods-per-year", "252"]).output)
    assert daily["periods_per_year"] == 252 and daily["periods_per_year_basis"] == "252 (--periods-per-year)"
    hold, hold_daily = inferred["baselines"]["buy_and_hold"], daily["baselines"]["buy_and_hold"]
    assert hold["total_return"] == hold_daily["total_return"]
    assert hold["sharpe"] == pytest.approx(hold_daily["sharpe"] * np.sqrt(390), rel=1e-9)
    assert hold["turnover_per_year"] == pytest.approx(hold_daily["turnover_per_year"] * 390, rel=1e-9)
    table = CliRunner().invoke(cli, args[:-1]).output
    assert "periods per year: 98280 (inferred: 1min bars, 390 a day, 252 days a year" in table
