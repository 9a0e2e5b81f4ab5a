import numpy as np

from streams.bus.schemas import validation_errors
from streams.technical.rules import (closes_as_of, remember_bar, remember_close, REVOTE_BARS, signal_record,
    TechnicalRules, vote)
from tests import fixtures

RULES = TechnicalRules(fast=3, slow=6, momentum=3, vol_window=4)


def closes(values):
    state = None
    for value in values:
        state = remember_close(state, value, RULES)
    return state


def test_warm_up_holds_and_history_is_bounded():
    assert vote(closes([1, 2, 3]), RULES)[0] == "HOLD"
    assert len(closes(range(1, 100))) == RULES.history


def test_uptrend_buys_downtrend_sells_and_disagreement_holds():
    rng = np.random.default_rng(1)
    up = 100 * np.cumprod(1 + 0.01 + 0.002 * rng.standard_normal(20))
    action, confidence, rationale = vote(closes(up), RULES)
    assert action == "BUY" and 0 < confidence <= 1 and "SMA3/SMA6" in rationale
    assert vote(closes(up[::-1]), RULES)[0] == "SELL"
    turning = list(up[:17]) + [up[13] * 0.97]  # trend still up, momentum down
    assert vote(closes(turning), RULES)[0] == "HOLD"


def test_signal_record_fits_the_schema():
    bar = fixtures.bar()
    record = signal_record(bar, "BUY", 0.5, "why", RULES)
    assert validation_errors("AgentSignal", record) == [] and record["model_version"] == RULES.version
    assert record["input_refs"] == ["bar:AAPL:1d:2001-02-05T00:00:00+00:00"]


def test_a_bar_voted_on_again_gives_the_same_signal_id():
    bar = fixtures.bar()
    first = signal_record(bar, "BUY", 0.5, "why", RULES)
    assert signal_record(bar, "BUY", 0.5, "why", RULES)["signal_id"] == first["signal_id"]
    others = [signal_record(fixtures.bar(symbol="MSFT"), "BUY", 0.5, "why", RULES),
              signal_record(fixtures.bar(ts=bar["ts"].replace(day=6)), "BUY", 0.5, "why", RULES),
              signal_record(fixtures.bar(interval="1h"), "BUY", 0.5, "why", RULES),
              signal_record(bar, "BUY", 0.5, "why", TechnicalRules()),  # another rule set, another model version
              signal_record(bar, "BUY", 0.5, "why", RULES, agent="technical-2")]
    assert len({first["signal_id"], *(o["signal_id"] for o in others)}) == 6


def test_a_bar_seen_before_gets_the_closes_its_first_vote_saw():
    values = [100.0 + (i % 7) - (i % 3) for i in range(RULES.history + 2 * REVOTE_BARS)]
    state, seen = None, []
    for day, value in enumerate(values):
        state = remember_bar(state, day, value, RULES)
        seen.append(state["closes"][-RULES.history:])
    assert len(state["bars_us"]) == RULES.history + REVOTE_BARS
    for back in (1, 2, REVOTE_BARS):
        day = len(values) - back
        assert closes_as_of(state, day, RULES) == seen[day] == remember_close(values[:day], values[day], RULES)
    assert closes_as_of(state, len(values) - RULES.history - REVOTE_BARS, RULES) is None  # kept, its window gone
    assert closes_as_of(state, 0, RULES) is None and closes_as_of(None, 0, RULES) is None
    young = remember_bar(remember_bar(None, 0, 1.0, RULES), 1, 2.0, RULES)
    assert closes_as_of(young, 0, RULES) == [1.0]  # nothing dropped yet: the warm-up bars too
