import pytest

from streams.consensus.vote import (ConsensusRules, decide, hit_rate, is_new_stance, parse_weights, record_call,
                               remember_vote, score_calls, update_accuracy)
from streams.errors import ConfigError
from streams.bus.schemas import validation_errors
from tests import fixtures

RULES = ConsensusRules()
DAY = 86400


def votes(*signals):
    state = None
    for signal in signals:
        state = remember_vote(state, signal)
    return state


def at(day, **overrides):
    return fixtures.signal(ts=fixtures.T0.replace(day=day), **overrides)


def test_agreeing_agents_give_a_sized_decision_with_every_vote():
    state = votes(at(5, agent="technical", action="BUY", confidence=0.8), at(5, agent="quant", action="BUY", confidence=0.6))
    decision = decide("AAPL", state, {}, RULES)
    assert decision["action"] == "BUY" and decision["agreement"] == 1.0
    assert decision["target_position"] == pytest.approx(0.7 * RULES.max_position)
    assert {v["agent"] for v in decision["votes"]} == {"technical", "quant"}
    assert validation_errors("ConsensusDecision", decision) == []


def test_a_tie_and_low_agreement_hold():
    tie = votes(at(5, agent="technical", action="BUY", confidence=0.7), at(5, agent="quant", action="SELL", confidence=0.7))
    assert decide("AAPL", tie, {}, RULES)["action"] == "HOLD"
    split = votes(at(5, agent="technical", action="BUY", confidence=0.9), at(5, agent="quant", action="SELL", confidence=0.5),
                  at(5, agent="analyst", action="SELL", confidence=0.3))
    decision = decide("AAPL", split, {}, RULES)
    assert decision["agreement"] < RULES.min_agreement and decision["action"] == "HOLD"
    assert decision["target_position"] == 0


def test_quiet_agents_stop_counting_and_unknown_agents_weigh_nothing():
    state = votes(at(1, agent="quant", action="SELL", confidence=1.0), at(5, agent="technical", action="BUY", confidence=0.5),
                  at(5, agent="stranger", action="SELL", confidence=1.0))
    decision = decide("AAPL", state, {}, RULES)
    assert [v["agent"] for v in decision["votes"]] == ["technical"] and decision["action"] == "BUY"


def test_measured_accuracy_shifts_the_weights():
    state = votes(at(5, agent="technical", action="BUY", confidence=0.6), at(5, agent="quant", action="SELL", confidence=0.6))
    accuracy = {"technical": {"hits": 40.0, "calls": 50.0}, "quant": {"hits": 10.0, "calls": 50.0}}
    decision = decide("AAPL", state, accuracy, RULES)
    weights = {v["agent"]: v["weight"] for v in decision["votes"]}
    assert weights["technical"] > 1 > weights["quant"] and decision["action"] == "BUY"
    assert hit_rate(None, RULES) == 0.5


def test_weights_from_the_environment_switch_agents_off():
    rules = ConsensusRules.from_env({"CONSENSUS_WEIGHTS": "technical=0,quant=2", "CONSENSUS_MIN_SCORE": "0.3"})
    assert rules.weight("technical") == 0 and rules.weight("quant") == 2 and rules.min_score == 0.3
    only_technical = votes(at(5, agent="technical", action="BUY", confidence=1.0))
    assert decide("AAPL", only_technical, {}, rules) is None
    with pytest.raises(ConfigError):
        parse_weights("technical:1")


def test_calls_are_scored_against_the_next_close():
    pending = record_call(None, at(5, agent="technical", action="BUY"), close=100.0)
    pending = record_call(pending, at(5, agent="quant", action="SELL"), close=100.0)
    pending = record_call(pending, at(5, agent="analyst", action="HOLD"), close=100.0)
    same_bar, scored = score_calls(pending, fixtures.bar(ts=fixtures.T0.replace(day=5, hour=0)))
    assert scored == [] and set(same_bar) == {"technical", "quant"}  # a call is not scored on its own bar
    remaining, scored = score_calls(pending, fixtures.bar(ts=fixtures.T0.replace(day=6, hour=0), close=101.0))
    assert remaining == {} and sorted(scored) == [("quant", False), ("technical", True)]
    assert update_accuracy(update_accuracy(None, True), False) == {"hits": 1.0, "calls": 2.0}


def test_only_changes_of_stance_are_published():
    decision = {"action": "BUY", "target_position": 0.1}
    assert is_new_stance(None, decision) and not is_new_stance(None, {"action": "HOLD", "target_position": 0})
    assert not is_new_stance({"action": "BUY", "target": 0.12}, decision)
    assert is_new_stance({"action": "BUY", "target": 0.25}, decision)
    assert is_new_stance({"action": "SELL", "target": -0.1}, decision)


def test_the_same_votes_give_the_same_decision_id_and_other_votes_another():
    technical, quant = at(5, agent="technical", action="BUY", confidence=0.8), at(5, agent="quant", action="BUY")
    decision = decide("AAPL", votes(technical, quant), {}, RULES)
    assert decide("AAPL", votes(quant, technical), {}, RULES)["decision_id"] == decision["decision_id"]
    assert decide("MSFT", votes(technical, quant), {}, RULES)["decision_id"] != decision["decision_id"]
    newer = at(5, agent="quant", action="BUY")  # another signal at the same moment
    assert decide("AAPL", votes(technical, newer), {}, RULES)["decision_id"] != decision["decision_id"]
    later = decide("AAPL", votes(technical, quant), {}, RULES, now=fixtures.T0.replace(day=6))
    assert later["decision_id"] != decision["decision_id"]
