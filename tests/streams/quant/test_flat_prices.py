"""Closes that stay flat for long runs (old or illiquid data) are a normal input: the quant agent
keeps voting through them and `algo quant evaluate` evaluates them (once: NaN policy logits)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.quant import model as qm
from streams.quant.env import EnvConfig, MarketSeries
from streams.quant.features import FeatureSpec, feature_matrix
from streams.quant.vote import advance, features_of
from tests import fixtures

SPEC = FeatureSpec()
DAY_US = 86_400_000_000


def flat_runs(n=700, seed=3):
    """fixtures.ohlcv with two long stretches where every price is the last close before them."""
    frame = fixtures.ohlcv(n, seed)
    for start, end in ((200, 320), (450, 560)):
        frame.loc[start:end, ["open", "high", "low", "close"]] = frame.loc[start - 1, "close"]
    return frame


@pytest.fixture(scope="module")
def policy():
    frame = fixtures.ohlcv(400, 4)
    model = qm.train_policy([MarketSeries.build("SYN", frame["open"], frame["close"], SPEC)], SPEC, EnvConfig(),
                            timesteps=64, seed=0, hyperparameters={"n_steps": 64, "batch_size": 32, "n_epochs": 1})
    return qm.QuantPolicy.from_model(model, SPEC, EnvConfig(), version="flat-test")


def test_the_agent_votes_through_a_flat_window_with_the_training_features(policy):
    closes = flat_runs()["close"].to_numpy()
    matrix = feature_matrix(closes, SPEC)
    state, votes = None, 0
    for i, close in enumerate(closes):
        state = advance(state, i * DAY_US, close, SPEC) or state
        features = features_of(state, SPEC)
        if i < SPEC.warmup - 1:
            assert features is None
            continue
        np.testing.assert_array_equal(features, matrix[i])
        sign, confidence, probabilities = policy.decide(features, state["position"])
        assert np.isfinite(probabilities).all() and 0 <= confidence <= 1 and sign in policy.positions
        state, votes = {**state, "position": sign}, votes + 1
    assert votes == len(closes) - SPEC.warmup + 1 and all(np.isfinite(state["closes"]))


def test_a_close_that_is_not_a_positive_number_leaves_the_window_as_it_was():
    state = advance(None, 0, 10.0, SPEC)
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        assert advance(state, DAY_US, bad, SPEC) is None
    assert advance(state, DAY_US, 11.0, SPEC)["closes"] == [10.0, 11.0]


def test_cli_evaluate_on_a_csv_with_flat_runs_evaluates(tmp_path):
    csv = tmp_path / "flat.csv"
    flat_runs().to_csv(csv, index=False)
    result = CliRunner().invoke(cli, ["quant", "evaluate", "--csv", str(csv), "--seeds", "1", "--folds", "2",
                                      "--timesteps", "256", "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert len(report["seeds"]) == 1 and np.isfinite(report["seeds"][0]["sharpe"])
