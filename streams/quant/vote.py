"""The Quant agent's per-bar logic, as pure functions on plain data (no Kafka, no torch here).

Per symbol the agent keeps {"closes": [...the last `warmup` + REVOTE_BARS closes...], "bars_us": their
bars' starts, "positions_before": the policy's position before each of them, "position": the
policy's own last target sign, "last_bar_us": the newest bar's start}. The policy sees its own
previous vote as its position, exactly as in training (streams.quant.env), not the paper book.
A bar seen before (re-delivered after a crash) is voted on again from what was kept as of that
bar (`revote`): the same signal as the first time, so a vote lost in the crash is sent after all.
"""
from __future__ import annotations

import math
from datetime import timezone

import numpy as np

from streams.bus.ids import derived_id
from streams.bus.revote import REVOTE_BARS, kept, revote_index
from streams.market.bars import to_micros
from streams.quant.features import FeatureSpec, latest_features

ACTION_OF_SIGN = {1.0: "BUY", 0.0: "HOLD", -1.0: "SELL"}
POSITION_NAMES = {-1.0: "short", 0.0: "flat", 1.0: "long"}


def advance(state: dict | None, bar_us: int, close: float, spec: FeatureSpec) -> dict | None:
    """The state after this bar, or None when the bar is not new (one seen before: a re-delivery
    after a crash or an idle-flushed bar re-published with more ticks; `revote` answers those) or
    when its close is not a positive number (it would turn every feature row of the window NaN for
    `warmup` bars)."""
    if state is not None and bar_us <= state["last_bar_us"]:
        return None
    if not (math.isfinite(close) and close > 0):
        return None
    state = state or {"closes": [], "position": 0.0, "last_bar_us": bar_us}
    keep = kept(spec.warmup)
    return {**state, "closes": (state["closes"] + [float(close)])[-keep:],
            "bars_us": (state.get("bars_us", []) + [bar_us])[-keep:],
            "positions_before": (state.get("positions_before", []) + [state["position"]])[-keep:],
            "last_bar_us": bar_us}


def features_of(state: dict, spec: FeatureSpec) -> np.ndarray | None:
    return latest_features(state["closes"], spec)


def rationale(version: str, sign: float, probabilities, positions) -> str:
    spread = " / ".join(f"{POSITION_NAMES.get(p, p)} {q:.2f}" for p, q in zip(positions, probabilities))
    return f"PPO {version}: {POSITION_NAMES.get(sign, sign)} (p: {spread})"


def vote_on_bar(state: dict | None, bar: dict, policy) -> tuple[dict | None, dict | None]:
    """(the symbol's new state or None when the bar changes nothing, the AgentSignal) for one bar and a
    served policy: the warm-up vote while the window fills, then the policy's."""
    advanced = advance(state, to_micros(bar["ts"]), bar["close"], policy.spec)
    if advanced is None:
        return None, None
    sign, signal = _vote(advanced["closes"], advanced["position"], bar, policy)
    return {**advanced, "position": sign}, signal


def revote(state: dict | None, bar: dict, policy) -> dict | None:
    """The signal for a bar seen before, as it was voted on the first time (from the closes and the
    position kept as of that bar); None when the bar is older than what is kept, or unknown."""
    at = revote_index((state or {}).get("bars_us", []), to_micros(bar["ts"]), policy.spec.warmup)
    if at is None:
        return None
    return _vote(state["closes"][:at + 1], state["positions_before"][at], bar, policy)[1]


def _vote(closes: list[float], position: float, bar: dict, policy) -> tuple[float, dict]:
    """(the policy's new position, the signal) for the bar whose close ends `closes`."""
    spec = policy.spec
    features = latest_features(closes, spec)
    if features is None:
        return position, warmup_record(bar, policy.version, min(len(closes), spec.warmup), spec.warmup)
    sign, confidence, probabilities = policy.decide(features, position)
    return sign, signal_record(bar, policy.version, sign, confidence, rationale(policy.version, sign, probabilities,
                                                                               policy.positions))


def warmup_record(bar: dict, version: str, have: int, need: int) -> dict:
    """The vote while the window fills: HOLD with no confidence. The consensus waits for a vote from
    each bar-driven agent on every bar, so the quant votes from the first bar on."""
    return signal_record(bar, version, 0.0, 0.0, f"PPO {version}: warming up ({have}/{need} bars)")


def signal_record(bar: dict, version: str, sign: float, confidence: float, text: str) -> dict:
    """The AgentSignal for a bar (schemas/avro/AgentSignal.avsc); the same bar and model give the same id."""
    return {
        "signal_id": derived_id("signal", "quant", bar["symbol"], bar["interval"], bar["ts"], version),
        "agent": "quant", "symbol": bar["symbol"], "ts": bar["ts"],
        "action": ACTION_OF_SIGN[float(np.sign(sign))], "confidence": float(min(1.0, max(0.0, confidence))),
        "rationale": text, "model_version": version,
        "input_refs": [f"bar:{bar['symbol']}:{bar['interval']}:{bar['ts'].astimezone(timezone.utc).isoformat()}"],
    }
