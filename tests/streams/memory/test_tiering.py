"""The Memory agent's decision logic: watermarks, victims by score, delete vs demote, proposals."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from streams.memory import tiering
from streams.memory.tiering import (DEMOTE, DROP, Candidate, ResidentKeys, SymbolVolatility, Watermarks,
                                    choose_victims, plan_batch, volatility)

MARKS = Watermarks(high=0.85, low=0.75)


def test_watermarks_act_only_above_high_and_free_down_to_low() -> None:
    assert not MARKS.over_high(850, 1000) and MARKS.over_high(851, 1000)
    assert MARKS.bytes_to_free(900, 1000) == 150
    assert MARKS.bytes_to_free(700, 1000) == 0
    assert not MARKS.over_high(10**9, 0)  # no maxmemory: nothing to enforce
    with pytest.raises(ValueError):
        Watermarks(high=0.7, low=0.8)


def test_nothing_is_chosen_when_under_the_watermark() -> None:
    candidates = [Candidate("a", 100, 9.0, False), Candidate("b", 100, 1.0, False)]
    assert choose_victims(candidates, MARKS.bytes_to_free(700, 1000), max_victims=10) == []


def test_victims_are_the_highest_scores_until_the_bytes_are_covered() -> None:
    candidates = [Candidate("low", 500, 0.5, False), Candidate("high", 100, 7.0, False),
                  Candidate("mid", 100, 3.0, False), Candidate("top", 100, 9.0, False)]
    chosen = choose_victims(candidates, 250, max_victims=10, overhead=0)
    assert [d.key for d in chosen] == ["top", "high", "mid"]  # 300 bytes >= 250; "low" is kept
    assert all(d.action == DEMOTE for d in chosen)
    assert [d.key for d in choose_victims(candidates, 10**6, max_victims=2, overhead=0)] == ["top", "high"]
    # the per-key overhead counts towards what a demotion frees
    assert [d.key for d in choose_victims(candidates, 250, max_victims=10, overhead=100)] == ["top", "high"]


def test_delete_rather_than_demote_when_the_policy_says_so() -> None:
    chosen = choose_victims([Candidate("gone", 10, 5.0, True), Candidate("kept", 10, 4.0, False)], 10**6,
                            max_victims=5)
    assert [(d.key, d.action) for d in chosen] == [("gone", DROP), ("kept", DEMOTE)]


def test_plan_batch_scores_known_keys_and_puts_unseen_keys_first() -> None:
    def should_delete(score: float, kind: int, size: int | None = None) -> bool:
        return score > 8 and kind == 3

    decisions = plan_batch(["a", "b", "c"], [10, 20, 30], np.array([9.0, 1.0, 5.0], dtype=np.float32), [3, 3, 0],
                           should_delete, 10**6, candidates=64, unseen=[("stranger", 40)])
    assert [(d.key, d.action) for d in decisions][:3] == [("stranger", DEMOTE), ("a", DROP), ("c", DEMOTE)]
    assert decisions[0].score == math.inf and len(decisions) == 4  # all: the deficit is larger than their bytes
    many = [f"k{i}" for i in range(64)]
    assert len(plan_batch(many, [10] * 64, np.arange(64.0), [0] * 64, should_delete, 10**6, candidates=64)) == \
        tiering.victims_per_batch(64) < 64


def test_resident_keys_propose_the_lru_tail_and_a_sample() -> None:
    resident = ResidentKeys()
    for i in range(100):
        resident.touch(f"k{i}")
    resident.touch("k0")  # now the most recent
    resident.discard("k1")
    assert "k1" not in resident and len(resident) == 99
    proposals = resident.proposals(16, random.Random(3))
    assert proposals[:4] == ["k2", "k3", "k4", "k5"]  # the oldest quarter first
    assert len(set(proposals)) == len(proposals) and set(proposals) <= set(resident)
    small = ResidentKeys()
    small.touch("x")
    small.touch("y")
    assert small.proposals(16, random.Random(0)) == ["x", "y"]
    for key in list(resident):
        resident.discard(key)
    assert len(resident) == 0 and resident.proposals(4, random.Random(0)) == []


def test_volatility_is_the_std_of_the_last_20_log_returns() -> None:
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.02, 40)))
    expected = np.std(np.diff(np.log(closes[-21:])), ddof=1)
    assert volatility(list(closes)) == pytest.approx(expected)
    assert volatility([100.0, 101.0]) == 0.0  # one return: no spread yet
    tracker = SymbolVolatility()
    for close in closes:
        value = tracker.update("AAPL", close)
    assert value == pytest.approx(expected) and tracker.get("AAPL") == value
    assert tracker.get("MSFT") == 0.0 and tracker.get(None) == 0.0


def test_plan_batch_judges_only_contenders_yet_chooses_as_the_full_ranking_does():
    rng = np.random.default_rng(3)
    keys = [f"bars:S{i}:1d:100" for i in range(128)]
    sizes = rng.integers(1, 5000, 128).tolist()
    scores = np.round(rng.normal(size=128), 1)  # ties on purpose
    judged = []

    def should_delete(score: float, kind: int, size: int | None = None) -> bool:
        judged.append(score)
        return score > 1.5

    planned = plan_batch(keys, sizes, scores, [0] * 128, should_delete, 10**9, candidates=128)
    full = choose_victims([Candidate(k, s, float(c), bool(c > 1.5)) for k, s, c in zip(keys, sizes, scores)], 10**9,
                          max_victims=tiering.victims_per_batch(128))
    assert planned == full and len(planned) == tiering.victims_per_batch(128)
    assert len(judged) < 128  # the rest were never judged


def test_the_stats_log_id_is_derived_from_what_it_reports():
    from streams.memory.tierer import stats_record
    from streams.memory.tiering import AccessState

    state = AccessState()
    state.observe("bars:AAPL:1d:100", "GET", "HOT", 100, "bars", "AAPL")
    first, again = (stats_record(state, {"demoted": 1, "dropped": 0, "rounds": 1}, 10, 100, "v1") for _ in range(2))
    other = stats_record(state, {"demoted": 1, "dropped": 0, "rounds": 1}, 11, 100, "v1")
    assert first["log_id"] == again["log_id"] != other["log_id"]
