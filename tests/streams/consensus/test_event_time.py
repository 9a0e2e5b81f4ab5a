import dataclasses
from datetime import timedelta

import pytest

from streams.bus.ids import derived_id
from streams.bus.schemas import validation_errors
from streams.consensus import event_time
from streams.consensus.vote import accuracy_factor
from streams.market.bars import to_micros
from streams.settings import ConsensusRules
from tests import fixtures

RULES = ConsensusRules()  # technical and quant vote on every bar; analyst (news) counts too, so news must clear
NO_NEWS = dataclasses.replace(RULES, weights={"technical": 1.0, "quant": 1.0})
BAR0 = fixtures.T0.replace(hour=0, minute=0)
HOUR = timedelta(hours=1)


def bar_ts(i):
    return BAR0 + timedelta(days=i)


def us(i):
    return to_micros(bar_ts(i))


def bar(i, close=100.0, symbol="AAPL"):
    return fixtures.bar(symbol=symbol, ts=bar_ts(i), open=close, close=close)


def bar_vote(agent, i, action="BUY", confidence=0.8, symbol="AAPL"):
    """A bar-driven agent's vote on bar i, its id derived as the agents derive theirs."""
    ts = bar_ts(i)
    return fixtures.signal(signal_id=derived_id("signal", agent, symbol, "1d", ts, "test"), agent=agent,
                           symbol=symbol, ts=ts, action=action, confidence=confidence)


def news_vote(ts, action="BUY", confidence=0.8, symbol="AAPL", agent="analyst"):
    return fixtures.signal(signal_id=derived_id("signal", agent, symbol, ts), agent=agent, symbol=symbol, ts=ts,
                           action=action, confidence=confidence)


def feed(state, *records, rules=RULES):
    """Bars (they have an "open") and votes, in the order given."""
    for record in records:
        if "open" in record:
            state = event_time.on_bar(state, record)
        else:
            state, _ = event_time.on_vote(state, record, rules)
    return state


def full_bar(i, close=100.0, technical="BUY", quant="BUY"):
    return [bar(i, close), bar_vote("technical", i, technical), bar_vote("quant", i, quant)]


def decide(state, rules=RULES, absent=(), symbol="AAPL"):
    return event_time.decide_ready(state, symbol, rules, absent)


def agents_of(decision):
    return sorted(v["agent"] for v in decision["votes"])


def test_each_bar_is_decided_exactly_once_in_bar_order():
    records = [r for i in range(3) for r in full_bar(i)]
    state = event_time.clear_news(feed(None, *records), us(2))
    state, decisions = decide(state)
    assert [d["ts"] for d in decisions] == [bar_ts(0), bar_ts(1), bar_ts(2)]
    assert all(agents_of(d) == ["quant", "technical"] for d in decisions)
    assert decide(state)[1] == []
    state = event_time.on_bar(state, bar(2))  # the last bar again (re-emitted)
    assert decide(state)[1] == []
    # deciding after every event gives the same decisions as deciding once at the end
    state, stepwise = event_time.clear_news(event_time.new_state(), us(2)), []
    for record in records:
        state, made = decide(feed(state, record))
        stepwise += made
    assert stepwise == decisions


def test_a_bar_waits_for_its_close_and_every_bar_driven_vote():
    state = event_time.clear_news(feed(None, bar_vote("technical", 0), bar_vote("quant", 0)), us(5))
    assert decide(state)[1] == []  # the close is not known yet
    state, decisions = decide(event_time.on_bar(state, bar(0)))
    assert [d["ts"] for d in decisions] == [bar_ts(0)]

    state = event_time.clear_news(feed(None, bar(0), bar_vote("technical", 0)), us(5))
    assert event_time.complete_bars(state, RULES) == [] and decide(state)[1] == []  # quant has not voted
    # quant's next vote is on bar 1: its votes come in bar order, so it skipped bar 0
    state, decisions = decide(feed(state, bar_vote("quant", 1, "SELL")))
    assert [d["ts"] for d in decisions] == [bar_ts(0)] and agents_of(decisions[0]) == ["technical"]
    assert decide(feed(state, bar_vote("technical", 1)))[1] == []  # bar 1 has no close yet


def test_an_absent_or_weightless_agent_is_not_waited_for():
    state = event_time.clear_news(feed(None, bar(0), bar_vote("technical", 0)), us(0))
    assert event_time.expected_agents(RULES, absent=["quant"]) == ["technical"]
    _, decisions = decide(state, absent=["quant"])
    assert [d["ts"] for d in decisions] == [bar_ts(0)] and agents_of(decisions[0]) == ["technical"]
    no_quant = dataclasses.replace(RULES, weights={"technical": 1.0, "quant": 0.0, "analyst": 1.0})
    assert event_time.expected_agents(no_quant) == ["technical"]
    assert [d["ts"] for d in decide(state, rules=no_quant)[1]] == [bar_ts(0)]


def test_a_bar_without_a_counted_vote_is_decided_to_hold():
    stranger = news_vote(bar_ts(0) - HOUR, agent="stranger")  # not bar-driven and without a weight
    state = event_time.clear_news(feed(None, bar(0), stranger), us(0))
    _, [decision] = decide(state, absent=["technical", "quant"])
    assert decision["decision_id"] == derived_id("decision", "AAPL", bar_ts(0))
    assert decision["action"] == "HOLD" and decision["target_position"] == 0.0 and decision["votes"] == []
    assert decision["ts"] == bar_ts(0) and validation_errors("ConsensusDecision", decision) == []


def test_a_late_bar_vote_is_reported_and_counted_once_in_the_next_decision():
    state = event_time.clear_news(feed(None, bar(0), bar_vote("technical", 0)), us(0))
    state, [first] = decide(state, absent=["quant"])
    assert agents_of(first) == ["technical"]
    late = bar_vote("quant", 0, "SELL", confidence=0.9)
    state, is_late = event_time.on_vote(state, late, RULES)
    assert is_late and state["late_votes"] == 1
    assert event_time.on_vote(state, late, RULES) == (state, False)  # a repeat is not a second late vote
    state = event_time.clear_news(feed(state, bar(1), bar_vote("technical", 1)), us(1))
    state, [second] = decide(state, absent=["quant"])
    assert agents_of(second) == ["quant", "technical"] and "counted late: quant" in second["rationale"]
    assert {v["signal_id"] for v in second["votes"]} == {late["signal_id"], bar_vote("technical", 1)["signal_id"]}
    state = event_time.clear_news(feed(state, bar(2), bar_vote("technical", 2)), us(2))
    _, [third] = decide(state, absent=["quant"])
    assert agents_of(third) == ["technical"] and "late" not in third["rationale"]


def test_news_votes_count_at_or_before_the_bar_and_inside_the_window():
    early = news_vote(bar_ts(0) - HOUR, "BUY")  # window 3 days: counts on bars 0, 1, 2, not 3
    after_3 = news_vote(bar_ts(3) + HOUR, "SELL")  # after bar 3: not on bar 3, on bar 4
    assert RULES.window_s == 3 * 86400
    records = [early, after_3] + [r for i in range(5) for r in full_bar(i, technical="HOLD", quant="HOLD")]
    _, decisions = decide(event_time.clear_news(feed(None, *records), us(4)))
    news_ids = [[v["signal_id"] for v in d["votes"] if v["agent"] == "analyst"] for d in decisions]
    assert news_ids == [[early["signal_id"]]] * 3 + [[], [after_3["signal_id"]]]


def test_bars_wait_for_news_to_clear_only_when_a_news_agent_has_a_weight():
    state = feed(None, *full_bar(0), *full_bar(1))
    assert event_time.waits_for_news(RULES) and event_time.ready_bars(state, RULES) == []
    assert event_time.clear_news(state, None) == state
    cleared = event_time.clear_news(state, us(0))
    assert event_time.ready_bars(cleared, RULES) == [us(0)]
    assert event_time.clear_news(event_time.clear_news(state, us(1)), us(0))["news_cleared_us"] == us(1)
    assert not event_time.waits_for_news(NO_NEWS)
    assert [d["ts"] for d in decide(feed(None, *full_bar(0), *full_bar(1), rules=NO_NEWS), rules=NO_NEWS)[1]] == \
        [bar_ts(0), bar_ts(1)]


def test_accuracy_is_kept_per_symbol_and_calls_are_scored_at_the_next_decided_close():
    records = [*full_bar(0, 100.0, technical="BUY", quant="SELL"), *full_bar(1, 110.0, "HOLD", "HOLD"),
               *full_bar(2, 90.0, "HOLD", "HOLD")]
    state, decisions = decide(feed(event_time.clear_news(event_time.new_state(), us(2)), *records, rules=NO_NEWS), rules=NO_NEWS)
    assert [v["weight"] for v in decisions[0]["votes"]] == [1.0, 1.0]  # no call scored yet
    # bar 0's calls are scored at bar 1's close (110): technical's BUY hit, quant's SELL missed
    expected = {"technical": {"hits": 1.0, "calls": 1.0}, "quant": {"hits": 0.0, "calls": 1.0}}
    weights = {v["agent"]: v["weight"] for v in decisions[1]["votes"]}
    assert weights == {agent: pytest.approx(accuracy_factor(a, NO_NEWS)) for agent, a in expected.items()}
    assert state["accuracy"] == expected  # HOLD votes are no calls: bar 2 scored nothing more
    msft = feed(None, *[dict(r, symbol="MSFT") for r in full_bar(0, 100.0, "BUY", "SELL")], rules=NO_NEWS)
    msft, [msft_decision] = decide(msft, rules=NO_NEWS, symbol="MSFT")
    assert msft["accuracy"] == {} and [v["weight"] for v in msft_decision["votes"]] == [1.0, 1.0]


def test_a_news_vote_counted_on_several_bars_is_one_call():
    news = news_vote(bar_ts(0) - HOUR, "BUY")
    records = [news] + [r for i in range(4) for r in full_bar(i, 100.0 + i, "HOLD", "HOLD")]
    state, decisions = decide(event_time.clear_news(feed(None, *records), us(3)))
    assert [("analyst" in agents_of(d)) for d in decisions] == [True, True, True, False]
    assert state["accuracy"] == {"analyst": {"hits": 1.0, "calls": 1.0}}


def test_repeated_deliveries_change_nothing():
    news = news_vote(bar_ts(0) - HOUR)
    records = [news, *full_bar(0), *full_bar(1)]
    once = feed(None, *records)
    twice = feed(None, *[r for record in records for r in (record, record)])
    assert twice == once
    state, decisions = decide(event_time.clear_news(once, us(1)))
    for record in records[1:]:  # after the decisions: no second decision, no late vote
        if "agent" in record:
            again, is_late = event_time.on_vote(state, record, RULES)
            assert again == state and not is_late
    assert event_time.on_vote(state, news, RULES)[0]["late_votes"] == 0
    assert decide(feed(state, *records))[1] == [] and len(decisions) == 2


def test_a_bar_or_vote_seen_again_after_a_crash_changes_nothing_and_a_lost_vote_sent_again_counts():
    records = [r for i in range(3) for r in full_bar(i, 100.0 + i, "BUY", "SELL")]
    state, first_run = decide(event_time.clear_news(feed(None, *records), us(2)))
    assert event_time.on_bar(state, bar(2, 102.0)) == state  # the newest decided bar again: nothing to do
    assert event_time.on_bar(state, bar(0, 100.0)) == state  # an older one, re-delivered: nothing either
    pending = feed(None, *full_bar(0, 100.0, "BUY", "SELL"), *full_bar(1, 101.0, "BUY", "SELL"), bar(2, 102.0))
    assert event_time.on_bar(pending, bar(1, 101.0)) == pending  # a pending bar re-delivered keeps its votes
    # the technical vote on bar 1 was lost in a crash; the agent sends it again after its vote on bar 2
    [lost] = [r for r in full_bar(1, 101.0, "BUY", "SELL") if "agent" in r and r["agent"] == "technical"]
    without = feed(None, *full_bar(0, 100.0, "BUY", "SELL"), *[r for r in full_bar(1, 101.0, "BUY", "SELL") if r is not lost],
                   *full_bar(2, 102.0, "BUY", "SELL"))
    resent, is_late = event_time.on_vote(without, lost, RULES)
    assert not is_late
    assert decide(event_time.clear_news(resent, us(2)))[1] == first_run
