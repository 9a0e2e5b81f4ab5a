"""The Quant agent's per-bar logic, without Kafka."""
from __future__ import annotations

from datetime import timedelta

import numpy as np

from streams.quant.vote import advance, features_of, rationale, signal_record
from streams.quant.features import FeatureSpec, feature_matrix
from streams.bus.schemas import validation_errors
from tests import fixtures

SPEC = FeatureSpec()
DAY_US = 86_400_000_000


def feed(closes, state=None, first_us=0):
    for i, close in enumerate(closes):
        state = advance(state, first_us + i * DAY_US, close, SPEC) or state
    return state


def test_the_window_keeps_warmup_closes_and_gives_the_training_features():
    closes = fixtures.ohlcv(200, 2)["close"].to_numpy()
    state = feed(closes)
    assert len(state["closes"]) == SPEC.warmup and state["closes"][-1] == closes[-1]
    np.testing.assert_array_equal(features_of(state, SPEC), feature_matrix(closes, SPEC)[-1])
    assert features_of(feed(closes[:SPEC.warmup - 1]), SPEC) is None


def test_a_repeated_bar_is_skipped_and_an_older_one_restarts_the_window():
    state = feed([10.0, 11.0, 12.0])
    assert advance(state, 2 * DAY_US, 12.5, SPEC) is None
    replayed = advance({**state, "position": 1.0}, 0, 9.0, SPEC)
    assert replayed["closes"] == [9.0] and replayed["position"] == 0.0


def test_the_signal_is_a_valid_agent_signal_with_the_model_version():
    bar = fixtures.bar(symbol="MSFT", ts=fixtures.T0.replace(hour=0, minute=0) + timedelta(days=3))
    text = rationale("quant-ppo-abc", -1.0, [0.7, 0.2, 0.1], (-1.0, 0.0, 1.0))
    record = signal_record(bar, "quant-ppo-abc", -1.0, 0.7, text)
    assert record["action"] == "SELL" and record["agent"] == "quant" and record["model_version"] == "quant-ppo-abc"
    assert record["rationale"] == "PPO quant-ppo-abc: short (p: short 0.70 / flat 0.20 / long 0.10)"
    assert record["input_refs"] == [f"bar:MSFT:1d:{bar['ts'].isoformat()}"]
    assert signal_record(bar, "v", 0.0, 0.4, "")["action"] == "HOLD"
    assert signal_record(bar, "v", 1.0, 1.0000001, "")["confidence"] == 1.0
    assert validation_errors("AgentSignal", record) == []


def test_a_bar_scored_again_by_the_same_model_gives_the_same_signal_id():
    bar = fixtures.bar()
    first = signal_record(bar, "quant-ppo-abc", 1.0, 0.7, "")
    assert signal_record(bar, "quant-ppo-abc", 1.0, 0.7, "")["signal_id"] == first["signal_id"]
    assert signal_record(bar, "quant-ppo-def", 1.0, 0.7, "")["signal_id"] != first["signal_id"]
    assert signal_record(fixtures.bar(symbol="MSFT"), "quant-ppo-abc", 1.0, 0.7, "")["signal_id"] != first["signal_id"]
