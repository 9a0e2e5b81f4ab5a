"""Consensus: a weighted, windowed vote per symbol, as pure functions on plain dicts.

Per symbol the latest vote of each agent is kept ({agent: {signal_id, action, confidence, ts_us}}).
A vote counts while it is at most `window_s` older than the newest vote on the symbol (event time),
so an agent that has gone quiet stops counting. Each vote weighs
  configured weight x accuracy factor, accuracy factor = 2 x hit rate (clipped to [0.25, 1.75]),
  where the hit rate is the agent's share of past BUY/SELL calls that the next bar's close proved
  right, shrunk toward 0.5 with a prior of `prior_calls` calls (so a new agent starts neutral).
score = sum(w x c x direction) / sum(w) with direction +1 BUY, -1 SELL, 0 HOLD;
agreement = the winning side's share of sum(w x c) over all counted votes.
BUY/SELL when |score| >= min_score and agreement >= min_agreement, else HOLD (ties included).
target_position = sign x min(1, |score|) x max_position (a fraction of equity).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping

from streams.bus.ids import derived_id
from streams.market.bars import to_micros
from streams.settings import ConsensusRules, parse_weights  # noqa: F401 - defined with the one Settings (settings.consensus)

DIRECTION = {"BUY": 1, "SELL": -1, "HOLD": 0}


def remember_vote(votes: Mapping[str, dict] | None, signal: dict) -> dict:
    vote = {"signal_id": signal["signal_id"], "action": signal["action"], "confidence": float(signal["confidence"]),
            "ts_us": to_micros(signal["ts"])}
    return {**(votes or {}), signal["agent"]: vote}


def hit_rate(accuracy: Mapping | None, rules: ConsensusRules) -> float:
    hits, calls = (accuracy or {}).get("hits", 0.0), (accuracy or {}).get("calls", 0.0)
    return (hits + 0.5 * rules.prior_calls) / (calls + rules.prior_calls)


def accuracy_factor(accuracy: Mapping | None, rules: ConsensusRules) -> float:
    return min(1.75, max(0.25, 2.0 * hit_rate(accuracy, rules)))


def decide(symbol: str, votes: Mapping[str, dict], accuracy: Mapping[str, Mapping], rules: ConsensusRules,
           now: datetime | None = None) -> dict | None:
    """The ConsensusDecision for a symbol's current votes; None when no vote counts."""
    if not votes:
        return None
    newest = max(v["ts_us"] for v in votes.values())
    counted = []
    for agent, vote in sorted(votes.items()):
        weight = rules.weight(agent) * accuracy_factor(accuracy.get(agent), rules)
        if weight > 0 and newest - vote["ts_us"] <= rules.window_s * 1e6:
            counted.append((agent, vote, weight))
    if not counted:
        return None
    total_weight = sum(w for _, _, w in counted)
    score = sum(w * v["confidence"] * DIRECTION[v["action"]] for _, v, w in counted) / total_weight
    conviction = {side: sum(w * v["confidence"] for _, v, w in counted if v["action"] == side) for side in DIRECTION}
    total_conviction = sum(conviction.values())
    side = "BUY" if score > 0 else "SELL" if score < 0 else "HOLD"
    agreement = conviction[side] / total_conviction if total_conviction > 0 and side != "HOLD" else 0.0
    action = side if abs(score) >= rules.min_score and agreement >= rules.min_agreement else "HOLD"
    target = DIRECTION[action] * min(1.0, abs(score)) * rules.max_position
    names = ", ".join(f"{a} {v['action']} {v['confidence']:.2f}x{w:.2f}" for a, v, w in counted)
    ts = datetime.fromtimestamp(newest / 1e6, tz=timezone.utc) if now is None else now
    return {  # the same votes at the same moment are the same decision, however often it is computed
        "decision_id": derived_id("decision", symbol, ts, *sorted(v["signal_id"] for _, v, _ in counted)),
        "symbol": symbol, "ts": ts,
        "action": action, "target_position": target, "agreement": agreement,
        "votes": [{"signal_id": v["signal_id"], "agent": a, "action": v["action"], "confidence": v["confidence"],
                   "weight": w} for a, v, w in counted],
        "rationale": f"score {score:+.2f}, agreement {agreement:.0%} from {len(counted)} vote(s): {names}",
    }


def is_new_stance(previous: Mapping | None, decision: dict, min_change: float = 0.1) -> bool:
    """Publish a decision only when the stance changes: a new action or a target moved by min_change."""
    if previous is None:
        return decision["action"] != "HOLD" or min_change <= 0
    return previous["action"] != decision["action"] or abs(previous["target"] - decision["target_position"]) >= min_change


def record_call(pending: Mapping[str, dict] | None, signal: dict, close: float | None) -> dict:
    """Remember a BUY/SELL call with the close it was made at, to score it on the next bar."""
    pending = dict(pending or {})
    if signal["action"] != "HOLD" and close is not None:
        pending[signal["agent"]] = {"action": signal["action"], "price": close, "ts_us": to_micros(signal["ts"])}
    return pending


def score_calls(pending: Mapping[str, dict] | None, bar: dict) -> tuple[dict, list[tuple[str, bool]]]:
    """Calls made before this bar, scored against its close: (still pending, [(agent, hit)])."""
    remaining, scored = {}, []
    bar_us = to_micros(bar["ts"])
    for agent, call in (pending or {}).items():
        if call["ts_us"] < bar_us:
            moved = float(bar["close"]) - call["price"]
            scored.append((agent, moved * DIRECTION[call["action"]] > 0))
        else:
            remaining[agent] = call
    return remaining, scored


def update_accuracy(accuracy: Mapping | None, hit: bool) -> dict:
    accuracy = dict(accuracy or {"hits": 0.0, "calls": 0.0})
    return {"hits": accuracy["hits"] + (1.0 if hit else 0.0), "calls": accuracy["calls"] + 1.0}
