"""The technical agent's rules on bars: SMA trend plus momentum, as pure functions.

A baseline voter that stays once the Quant and Analyst agents arrive (weight it or switch it off
in CONSENSUS_WEIGHTS). Vote: BUY when the fast SMA is above the slow one and momentum agrees,
SELL when both point down, HOLD otherwise or during warm-up. Confidence grows with the trend's
strength measured in units of recent volatility (risk_core's rolling volatility).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from streams.bus.revote import REVOTE_BARS, kept, revote_index

import risk_core as rc
from streams.bus.ids import derived_id


@dataclass(frozen=True)
class TechnicalRules:
    fast: int = 10
    slow: int = 30
    momentum: int = 10
    vol_window: int = 20

    @property
    def history(self) -> int:
        return max(self.slow, self.momentum + 1, self.vol_window + 1)

    @property
    def version(self) -> str:
        return f"technical-sma{self.fast}-{self.slow}-mom{self.momentum}"


def remember_close(closes: list[float] | None, close: float, rules: TechnicalRules) -> list[float]:
    return ((closes or []) + [float(close)])[-rules.history:]


def remember_bar(state: dict | None, bar_us: int, close: float, rules: TechnicalRules) -> dict:
    """A symbol's state, {"closes": [...], "bars_us": [...their bars' starts]}, with a new bar; it
    keeps REVOTE_BARS more than the vote needs, so a bar seen again can be voted on as it was."""
    keep = kept(rules.history)
    state = state or {"closes": [], "bars_us": []}
    return {"closes": (state["closes"] + [float(close)])[-keep:], "bars_us": (state["bars_us"] + [bar_us])[-keep:]}


def closes_as_of(state: dict | None, bar_us: int, rules: TechnicalRules) -> list[float] | None:
    """The closes the vote on bar `bar_us` saw (a bar seen before: a re-delivery after a crash), or
    None when it is older than what is kept, or unknown."""
    at = revote_index((state or {}).get("bars_us", []), bar_us, rules.history)
    if at is None:
        return None
    return state["closes"][:at + 1][-rules.history:]


def vote(closes: list[float], rules: TechnicalRules) -> tuple[str, float, str]:
    """(action, confidence, rationale) from the most recent closes, oldest first."""
    if len(closes) < rules.history:
        return "HOLD", 0.0, f"warming up ({len(closes)}/{rules.history} bars)"
    prices = np.asarray(closes, dtype=np.float64)
    fast, slow = prices[-rules.fast:].mean(), prices[-rules.slow:].mean()
    momentum = prices[-1] / prices[-1 - rules.momentum] - 1.0
    returns = np.diff(prices) / prices[:-1]
    volatility = float(rc.rolling_volatility(returns, rules.vol_window, annualize=False)[-1])
    trend = fast / slow - 1.0
    strength = abs(trend) / volatility if volatility > 0 and math.isfinite(volatility) else 0.0
    confidence = float(min(1.0, strength / 2.0))
    rationale = f"SMA{rules.fast}/SMA{rules.slow} {trend:+.2%}, {rules.momentum}-bar momentum {momentum:+.2%}"
    if trend > 0 and momentum > 0:
        return "BUY", confidence, rationale
    if trend < 0 and momentum < 0:
        return "SELL", confidence, rationale
    return "HOLD", confidence, rationale + " (disagree)"


def signal_record(bar: dict, action: str, confidence: float, rationale: str, rules: TechnicalRules,
                  agent: str = "technical") -> dict:
    """The AgentSignal for a bar (schemas/avro/AgentSignal.avsc); the same bar gives the same id."""
    return {
        "signal_id": derived_id("signal", agent, bar["symbol"], bar["interval"], bar["ts"], rules.version),
        "agent": agent, "symbol": bar["symbol"], "ts": bar["ts"],
        "action": action, "confidence": confidence, "rationale": rationale, "model_version": rules.version,
        "input_refs": [f"bar:{bar['symbol']}:{bar['interval']}:{bar['ts'].astimezone(timezone.utc).isoformat()}"],
    }
