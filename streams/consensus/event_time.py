"""Event-time consensus per symbol: every bar is decided exactly once, from the votes that belong to
it, whatever order they arrive in (README, "Event time"). Pure functions on a JSON-able state.

Bar t of a symbol is decided when
  - its close is known (market.bars),
  - every bar-driven agent (rules.bar_agents with a weight) has voted on t or on a later bar (an
    agent's votes on a symbol arrive in bar order, so a later one means it skipped t), unless the
    agents layer has found it absent (silent for rules.agent_timeout_s),
  - news-driven agents have nothing more to say up to t: the agents layer clears the symbol's bars
    up to a time once the news barrier has passed (streams.bus.progress), see `clear_news`,
and all earlier bars of the symbol are decided. It counts each bar-driven agent's vote on t and
each news-driven agent's latest vote at or before t (not older than rules.window_s). A vote that
comes after its bar was decided is late: it is counted (once) in the next decision and reported.

Weights use each agent's accuracy on this symbol: its BUY/SELL calls, scored at the next decided
bar's close. Scoring per symbol keeps symbols independent, so replaying them at different paces
gives the same decisions.

State: {"pending": {str(bar µs): {"close", "votes": {agent: vote}}}, "seen": {agent: µs},
"last_bar_us", "decided_us", "news": [vote], "late": {agent: vote}, "late_votes": int,
"news_cleared_us", "calls": {agent: {"action", "price", "signal_id"}}, "accuracy": {agent: {"hits", "calls"}},
"recent_ids": [signal ids already counted]}; a vote is {"signal_id", "agent", "action",
"confidence", "ts_us"}.
"""
from __future__ import annotations

from typing import Iterable

from streams.bus.ids import RECENT_IDS, derived_id
from streams.consensus.vote import DIRECTION, decide, update_accuracy
from streams.market.bars import from_micros, to_micros
from streams.settings import ConsensusRules


def new_state() -> dict:
    return {"pending": {}, "seen": {}, "last_bar_us": None, "decided_us": None, "news": [], "late": {},
            "late_votes": 0, "news_cleared_us": None, "calls": {}, "accuracy": {}, "recent_ids": []}


def _vote(signal: dict) -> dict:
    return {"signal_id": signal["signal_id"], "agent": signal["agent"], "action": signal["action"],
            "confidence": float(signal["confidence"]), "ts_us": to_micros(signal["ts"])}


def _entry(state: dict, ts_us: int) -> dict:
    return state["pending"].get(str(ts_us)) or {"close": None, "votes": {}}


def on_bar(state: dict | None, bar: dict) -> dict:
    """The state after a bar of market.bars. One at or before the last decided bar changes nothing,
    and an older one still pending keeps its votes: a bar seen again is a re-delivery after a crash
    (a new replay of a period runs under a fresh app id, with fresh state)."""
    state = state or new_state()
    ts_us, close = to_micros(bar["ts"]), float(bar["close"])
    if state["decided_us"] is not None and ts_us <= state["decided_us"]:
        return state
    entry = {**_entry(state, ts_us), "close": close}
    last = ts_us if state["last_bar_us"] is None else max(state["last_bar_us"], ts_us)
    return {**state, "pending": {**state["pending"], str(ts_us): entry}, "last_bar_us": last}


def on_vote(state: dict | None, signal: dict, rules: ConsensusRules) -> tuple[dict, bool]:
    """(the state after an AgentSignal, whether it came late). A repeat of a vote already held or
    counted changes nothing."""
    state = state or new_state()
    vote = _vote(signal)
    agent, ts_us = vote["agent"], vote["ts_us"]
    if vote["signal_id"] in state["recent_ids"]:
        return state, False
    decided = state["decided_us"]
    is_late = decided is not None and ts_us <= decided
    if agent not in rules.bar_agents:
        if any(v["signal_id"] == vote["signal_id"] for v in state["news"]):
            return state, False
        news = sorted(state["news"] + [vote], key=lambda v: (v["ts_us"], v["signal_id"]))
        return {**state, "news": news, "late_votes": state["late_votes"] + is_late}, is_late
    if is_late:
        if state["late"].get(agent, {}).get("signal_id") == vote["signal_id"]:
            return state, False
        return {**state, "late": {**state["late"], agent: vote}, "late_votes": state["late_votes"] + 1}, True
    entry = _entry(state, ts_us)
    if entry["votes"].get(agent, {}).get("signal_id") == vote["signal_id"]:
        return state, False
    # an older vote not held yet is one sent again after a crash (its first copy lost): it counts
    seen = state["seen"].get(agent)
    entry = {**entry, "votes": {**entry["votes"], agent: vote}}
    return {**state, "pending": {**state["pending"], str(ts_us): entry},
            "seen": {**state["seen"], agent: ts_us if seen is None else max(seen, ts_us)}}, False


def expected_agents(rules: ConsensusRules, absent: Iterable[str] = ()) -> list[str]:
    return sorted(a for a in rules.bar_agents if rules.weight(a) > 0 and a not in set(absent))


def waits_for_news(rules: ConsensusRules) -> bool:
    """Whether any agent that is not bar-driven can count (then the news barrier applies)."""
    return rules.default_weight > 0 or any(w > 0 for a, w in rules.weights.items() if a not in rules.bar_agents)


def complete_bars(state: dict, rules: ConsensusRules, absent: Iterable[str] = ()) -> list[int]:
    """The pending bars, oldest first, that have their close and every expected bar-driven vote,
    up to the first that has not (bars are decided in order)."""
    agents = expected_agents(rules, absent)
    if any(state["seen"].get(a) is None for a in agents):
        return []
    voted_through = min((state["seen"][a] for a in agents), default=None)  # no bar after it is complete
    done = []
    for ts_us in sorted(t for t in map(int, state["pending"]) if voted_through is None or t <= voted_through):
        if state["pending"][str(ts_us)]["close"] is None:
            break
        done.append(ts_us)
    return done


def clear_news(state: dict, through_us: int | None) -> dict:
    """News-driven agents have said all they will up to `through_us` (the barrier passed)."""
    if through_us is None:
        return state
    cleared = state["news_cleared_us"]
    return {**state, "news_cleared_us": through_us if cleared is None else max(cleared, through_us)}


def ready_bars(state: dict, rules: ConsensusRules, absent: Iterable[str] = ()) -> list[int]:
    """The bars that can be decided now, oldest first."""
    complete = complete_bars(state, rules, absent)
    if not waits_for_news(rules):
        return complete
    cleared = state["news_cleared_us"]
    return [t for t in complete if cleared is not None and t <= cleared]


def _news_votes(state: dict, ts_us: int, rules: ConsensusRules) -> dict[str, dict]:
    """Each news-driven agent's latest vote at or before the bar, inside the window."""
    latest: dict[str, dict] = {}
    for vote in state["news"]:  # sorted by time
        if vote["ts_us"] <= ts_us and ts_us - vote["ts_us"] <= rules.window_s * 1e6:
            latest[vote["agent"]] = vote
    return latest


def decide_bar(state: dict, symbol: str, ts_us: int, rules: ConsensusRules) -> tuple[dict, dict]:
    """(state, ConsensusDecision) for the pending bar `ts_us` (the oldest ready one)."""
    state, decision = _decided(state, symbol, ts_us, rules)
    return {**state, "pending": {t: e for t, e in state["pending"].items() if int(t) != ts_us}}, decision


def _decided(state: dict, symbol: str, ts_us: int, rules: ConsensusRules) -> tuple[dict, dict]:
    """decide_bar, the bar left in "pending" (decide_ready drops its decided bars in one pass)."""
    entry = state["pending"][str(ts_us)]
    close = float(entry["close"])
    accuracy = dict(state["accuracy"])
    for agent, call in sorted(state["calls"].items()):  # calls made at the previous decided bar
        moved = close - call["price"]
        accuracy[agent] = update_accuracy(accuracy.get(agent), moved * DIRECTION[call["action"]] > 0)
    votes = dict(entry["votes"])
    late_used = [vote for agent, vote in sorted(state["late"].items()) if agent not in votes]
    votes.update({vote["agent"]: vote for vote in late_used})
    for agent, vote in _news_votes(state, ts_us, rules).items():
        votes.setdefault(agent, vote)
    ts = from_micros(ts_us)
    decision = decide(symbol, votes, accuracy, rules, now=ts)
    if decision is None:  # nothing counted: the bar is still decided, to HOLD
        decision = {"decision_id": derived_id("decision", symbol, ts), "symbol": symbol, "ts": ts, "action": "HOLD",
                    "target_position": 0.0, "agreement": 0.0, "votes": [], "rationale": "no vote counted: hold"}
    if late_used:
        decision["rationale"] += f"; counted late: {', '.join(v['agent'] for v in late_used)}"
    counted = {v["agent"]: votes[v["agent"]] for v in decision["votes"]}
    # a vote is a call once: a news vote counted on several bars is scored at the bar after its first
    calls = {agent: {"action": vote["action"], "price": close, "signal_id": vote["signal_id"]}
             for agent, vote in counted.items() if vote["action"] != "HOLD" and vote["signal_id"] not in state["recent_ids"]}
    horizon = ts_us - rules.window_s * 1e6
    fresh = [v["signal_id"] for _, v in sorted(counted.items()) if v["signal_id"] not in state["recent_ids"]]
    return {**state, "decided_us": ts_us, "late": {}, "accuracy": accuracy, "calls": calls,
            "news": [v for v in state["news"] if v["ts_us"] >= horizon],
            "recent_ids": [*state["recent_ids"], *fresh][-RECENT_IDS:]}, decision


def decide_ready(state: dict, symbol: str, rules: ConsensusRules,
                 absent: Iterable[str] = ()) -> tuple[dict, list[dict]]:
    """Every decision the state allows now, in bar order."""
    decisions = []
    for ts_us in ready_bars(state, rules, absent):
        state, decision = _decided(state, symbol, ts_us, rules)
        decisions.append(decision)
    if decisions:  # the decided bars are the oldest pending ones
        state = {**state, "pending": {t: e for t, e in state["pending"].items() if int(t) > state["decided_us"]}}
    return state, decisions
