"""The Quant agent's per-bar logic, without Kafka."""
from __future__ import annotations

from datetime import timedelta

import numpy as np

from streams.quant.vote import REVOTE_BARS, advance, features_of, rationale, revote, signal_record, vote_on_bar
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
    assert len(state["closes"]) == SPEC.warmup + REVOTE_BARS and state["closes"][-1] == closes[-1]
    np.testing.assert_array_equal(features_of(state, SPEC), feature_matrix(closes, SPEC)[-1])
    assert features_of(feed(closes[:SPEC.warmup - 1]), SPEC) is None


def test_a_bar_seen_before_changes_nothing():
    state = feed([10.0, 11.0, 12.0])
    assert advance(state, 2 * DAY_US, 12.5, SPEC) is None  # the last bar again (an idle-flushed re-publish)
    assert advance(state, 0, 9.0, SPEC) is None  # an older one: a re-delivery after a crash


class FollowThePosition:
    """A deterministic stand-in policy whose vote depends on the features and on its position."""
    spec, version, positions = SPEC, "quant-ppo-test", (-1.0, 0.0, 1.0)

    def decide(self, features, position):
        score = float(np.sum(features)) + position
        return (1.0 if score > 0 else -1.0), 0.6, [0.2, 0.2, 0.6]


def test_a_re_delivered_bar_is_voted_on_again_exactly_as_the_first_time():
    policy, series = FollowThePosition(), fixtures.ohlcv(SPEC.warmup + 2 * REVOTE_BARS, 3)["close"].to_numpy()
    day0 = fixtures.T0.replace(hour=0, minute=0)
    bars = [fixtures.bar(ts=day0 + timedelta(days=i), close=float(c)) for i, c in enumerate(series)]
    state, first_votes = None, []
    for bar in bars:
        state, signal = vote_on_bar(state, bar, policy)
        first_votes.append(signal)
    kept = len(state["bars_us"])
    assert kept == SPEC.warmup + REVOTE_BARS
    for back in (1, 2, REVOTE_BARS):  # the last bar, and bars re-read after a crash
        assert revote(state, bars[-back], policy) == first_votes[-back]
    assert revote(state, bars[-kept], policy) is None  # kept, but its own window is gone
    assert revote(state, bars[0], policy) is None  # older than what is kept
    early = None  # while nothing was dropped, the first bars can be voted on again too (warm-up votes)
    for bar in bars[:5]:
        early, _ = vote_on_bar(early, bar, policy)
    assert revote(early, bars[0], policy) == first_votes[0]


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
