import pytest

from streams.bus.schemas import validation_errors
from streams.consensus.vote import (ConsensusRules, accuracy_factor, decide, hit_rate, parse_weights,
                                    update_accuracy)
from streams.errors import ConfigError
from streams.market.bars import to_micros
from tests import fixtures

RULES = ConsensusRules()


def votes(*signals) -> dict:
    """{agent: vote} as streams.consensus.event_time hands them to decide (the last signal per agent wins)."""
    return {s["agent"]: {"signal_id": s["signal_id"], "agent": s["agent"], "action": s["action"],
                         "confidence": float(s["confidence"]), "ts_us": to_micros(s["ts"])} for s in signals}


def at(day, **overrides):
    return fixtures.signal(ts=fixtures.T0.replace(day=day), **overrides)


def test_agreeing_agents_give_a_sized_decision_with_every_vote():
    state = votes(at(5, agent="technical", action="BUY", confidence=0.8), at(5, agent="quant", action="BUY", confidence=0.6))
    decision = decide("AAPL", state, {}, RULES)
    assert decision["action"] == "BUY" and decision["agreement"] == 1.0
    assert decision["target_position"] == pytest.approx(0.7 * RULES.max_position)
    assert {v["agent"] for v in decision["votes"]} == {"technical", "quant"}
    assert decision["ts"] == fixtures.T0  # the newest vote's time unless told
    assert validation_errors("ConsensusDecision", decision) == []


def test_selling_agents_give_a_negative_target_capped_at_max_position():
    state = votes(at(5, agent="technical", action="SELL", confidence=1.0), at(5, agent="quant", action="SELL", confidence=1.0))
    decision = decide("AAPL", state, {}, RULES)
    assert decision["action"] == "SELL" and decision["target_position"] == pytest.approx(-RULES.max_position)


def test_a_tie_and_low_agreement_hold():
    tie = votes(at(5, agent="technical", action="BUY", confidence=0.7), at(5, agent="quant", action="SELL", confidence=0.7))
    assert decide("AAPL", tie, {}, RULES)["action"] == "HOLD"
    split = votes(at(5, agent="technical", action="BUY", confidence=0.9), at(5, agent="quant", action="SELL", confidence=0.5),
                  at(5, agent="analyst", action="SELL", confidence=0.3))
    decision = decide("AAPL", split, {}, RULES)
    assert decision["agreement"] < RULES.min_agreement and decision["action"] == "HOLD"
    assert decision["target_position"] == 0


def test_a_weak_score_holds_even_when_every_vote_agrees():
    weak = votes(at(5, agent="technical", action="BUY", confidence=0.1))  # score 0.1 < min_score 0.15
    decision = decide("AAPL", weak, {}, RULES)
    assert decision["agreement"] == 1.0 and decision["action"] == "HOLD" and decision["target_position"] == 0


def test_old_votes_stop_counting_and_unknown_agents_weigh_nothing():
    state = votes(at(1, agent="quant", action="SELL", confidence=1.0), at(5, agent="technical", action="BUY", confidence=0.5),
                  at(5, agent="stranger", action="SELL", confidence=1.0))
    decision = decide("AAPL", state, {}, RULES)
    assert [v["agent"] for v in decision["votes"]] == ["technical"] and decision["action"] == "BUY"


def test_no_vote_or_no_counted_vote_gives_no_decision():
    assert decide("AAPL", {}, {}, RULES) is None
    assert decide("AAPL", votes(at(5, agent="stranger", action="BUY", confidence=1.0)), {}, RULES) is None


def test_measured_accuracy_shifts_the_weights():
    state = votes(at(5, agent="technical", action="BUY", confidence=0.6), at(5, agent="quant", action="SELL", confidence=0.6))
    accuracy = {"technical": {"hits": 40.0, "calls": 50.0}, "quant": {"hits": 10.0, "calls": 50.0}}
    decision = decide("AAPL", state, accuracy, RULES)
    weights = {v["agent"]: v["weight"] for v in decision["votes"]}
    assert weights["technical"] > 1 > weights["quant"] and decision["action"] == "BUY"
    assert weights["technical"] == pytest.approx(RULES.weight("technical") * accuracy_factor(accuracy["technical"], RULES))


def test_hit_rate_starts_neutral_and_the_factor_is_clipped():
    assert hit_rate(None, RULES) == 0.5 and accuracy_factor(None, RULES) == 1.0
    # shrunk toward 0.5 by prior_calls (10): 8 hits of 10 calls -> (8 + 5) / 20
    assert hit_rate({"hits": 8.0, "calls": 10.0}, RULES) == pytest.approx(0.65)
    assert accuracy_factor({"hits": 8.0, "calls": 10.0}, RULES) == pytest.approx(1.3)
    assert accuracy_factor({"hits": 1000.0, "calls": 1000.0}, RULES) == 1.75
    assert accuracy_factor({"hits": 0.0, "calls": 1000.0}, RULES) == 0.25


def test_update_accuracy_counts_hits_and_calls():
    assert update_accuracy(None, True) == {"hits": 1.0, "calls": 1.0}
    assert update_accuracy(update_accuracy(None, True), False) == {"hits": 1.0, "calls": 2.0}
    before = {"hits": 3.0, "calls": 4.0}
    assert update_accuracy(before, True) == {"hits": 4.0, "calls": 5.0} and before == {"hits": 3.0, "calls": 4.0}


def test_weights_from_the_environment_switch_agents_off():
    rules = ConsensusRules.from_env({"CONSENSUS_WEIGHTS": "technical=0,quant=2", "CONSENSUS_MIN_SCORE": "0.3"})
    assert rules.weight("technical") == 0 and rules.weight("quant") == 2 and rules.min_score == 0.3
    only_technical = votes(at(5, agent="technical", action="BUY", confidence=1.0))
    assert decide("AAPL", only_technical, {}, rules) is None
    assert parse_weights(" technical=1, quant=0.5 ,") == {"technical": 1.0, "quant": 0.5}
    for bad in ("technical:1", "=1", "technical=inf", "technical=-1"):
        with pytest.raises(ConfigError):
            parse_weights(bad)


def test_rules_name_the_bar_driven_agents():
    assert RULES.bar_agents == ("technical", "quant") and RULES.agent_timeout_s > 0
    assert not hasattr(RULES, "min_change")  # the consensus decides every bar
    rules = ConsensusRules.from_env({"CONSENSUS_BAR_AGENTS": "quant", "CONSENSUS_AGENT_TIMEOUT_S": "5"})
    assert rules.bar_agents == ("quant",) and rules.agent_timeout_s == 5.0


def test_the_same_votes_give_the_same_decision_id_and_other_votes_another():
    technical, quant = at(5, agent="technical", action="BUY", confidence=0.8), at(5, agent="quant", action="BUY")
    decision = decide("AAPL", votes(technical, quant), {}, RULES)
    assert decide("AAPL", votes(quant, technical), {}, RULES)["decision_id"] == decision["decision_id"]
    assert decide("MSFT", votes(technical, quant), {}, RULES)["decision_id"] != decision["decision_id"]
    newer = at(5, agent="quant", action="BUY")  # another signal at the same moment
    assert decide("AAPL", votes(technical, newer), {}, RULES)["decision_id"] != decision["decision_id"]
    later = decide("AAPL", votes(technical, quant), {}, RULES, now=fixtures.T0.replace(day=6))
    assert later["decision_id"] != decision["decision_id"] and later["ts"] == fixtures.T0.replace(day=6)
