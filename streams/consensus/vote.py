"""Consensus: a weighted, windowed vote per symbol, as pure functions on plain dicts.

Which votes a decision counts, and when, is streams.consensus.event_time's: here, a set of votes
({agent: {signal_id, action, confidence, ts_us}}) becomes a decision. A vote counts while it is at
most `window_s` older than the newest one (event time). Each vote weighs
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
from streams.settings import ConsensusRules, parse_weights  # noqa: F401 - defined with the one Settings (settings.consensus)

DIRECTION = {"BUY": 1, "SELL": -1, "HOLD": 0}


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


def update_accuracy(accuracy: Mapping | None, hit: bool) -> dict:
    accuracy = dict(accuracy or {"hits": 0.0, "calls": 0.0})
    return {"hits": accuracy["hits"] + (1.0 if hit else 0.0), "calls": accuracy["calls"] + 1.0}
