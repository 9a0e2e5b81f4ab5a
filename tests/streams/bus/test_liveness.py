"""streams/bus/liveness.py: the stall and lag-alarm rule on plain numbers (the broker side is in
tests/ops/test_supervisor.py, against the real stack)."""
from __future__ import annotations

from streams.bus.liveness import GroupOffsets, LivenessTracker


def track(*samples: tuple[float, int, int], stall_after_s=30.0, alarm=100, alarm_after_s=20.0):
    tracker = LivenessTracker(stall_after_s, alarm, alarm_after_s)
    return [tracker.observe(at, {"g": GroupOffsets(committed, lag)})["g"] for at, committed, lag in samples]


def test_a_group_that_commits_is_never_stalled_however_far_behind():
    verdicts = track(*((t, 1000 + t, 5000) for t in range(0, 120, 10)))
    assert not any(v.stalled for v in verdicts)
    assert all(v.idle_s == 0 for v in verdicts)


def test_a_group_with_lag_and_no_commit_is_stalled_after_the_limit():
    verdicts = track((0, 10, 5), (10, 10, 5), (29, 10, 8), (30, 10, 8), (45, 10, 9))
    assert [v.stalled for v in verdicts] == [False, False, False, True, True]
    assert verdicts[-1].idle_s == 45


def test_a_group_without_lag_is_idle_not_stalled():
    verdicts = track((0, 10, 0), (100, 10, 0), (200, 10, 0))
    assert not any(v.stalled for v in verdicts)
    # new messages arrive: the clock starts when they do, not when the group last committed
    later = LivenessTracker(30.0, 100, 20.0)
    later.observe(0, {"g": GroupOffsets(10, 0)})
    assert not later.observe(100, {"g": GroupOffsets(10, 0)})["g"].stalled
    assert not later.observe(110, {"g": GroupOffsets(10, 4)})["g"].stalled
    assert later.observe(130, {"g": GroupOffsets(10, 4)})["g"].stalled


def test_a_commit_resets_the_stall_clock():
    verdicts = track((0, 10, 5), (25, 10, 5), (26, 11, 5), (50, 11, 5), (56, 11, 5))
    assert [v.stalled for v in verdicts] == [False, False, False, False, True]


def test_the_lag_alarm_needs_the_lag_to_stay_high():
    verdicts = track((0, 0, 150), (10, 5, 150), (19, 9, 120), (20, 10, 101), (25, 15, 50), (30, 16, 200),
                     (49, 20, 200), (50, 21, 200))
    assert [v.lag_alarm for v in verdicts] == [False, False, False, True, False, False, False, True]
    assert verdicts[3].lagging_s == 20 and verdicts[4].lagging_s == 0


def test_forget_starts_a_restarted_groups_clocks_again():
    tracker = LivenessTracker(30.0, 100, 0.0)
    tracker.observe(0, {"g": GroupOffsets(10, 500)})
    assert tracker.observe(40, {"g": GroupOffsets(10, 500)})["g"].stalled
    tracker.forget("g")
    again = tracker.observe(41, {"g": GroupOffsets(10, 500)})["g"]
    assert not again.stalled and again.idle_s == 0 and again.lag_alarm  # the alarm level is lag, not time here
