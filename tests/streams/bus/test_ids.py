"""Derived ids: the same inputs give the same id, different inputs a different one."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from streams.bus.ids import NAMESPACE, derived_id, remember_id

T = datetime(2001, 2, 5, tzinfo=timezone.utc)


def test_same_parts_same_id_and_it_is_a_uuid5_in_the_projects_namespace():
    first = derived_id("order", "decision-1", "acct")
    assert first == derived_id("order", "decision-1", "acct")
    assert uuid.UUID(first).version == 5
    assert first == str(uuid.uuid5(NAMESPACE, '["order","decision-1","acct"]'))


def test_any_different_part_kind_or_order_gives_another_id():
    ids = {derived_id("order", "d1", "acct"), derived_id("order", "d2", "acct"), derived_id("order", "d1", "other"),
           derived_id("fill", "d1", "acct"), derived_id("order", "acct", "d1"), derived_id("order", "d1"),
           derived_id("order", "d1|acct"), derived_id("order", "d1", "acct", 1)}
    assert len(ids) == 8


def test_one_instant_is_one_part_whatever_its_zone_and_naive_means_utc():
    eastern = T.astimezone(timezone(timedelta(hours=-5)))
    assert derived_id("signal", T) == derived_id("signal", eastern) == derived_id("signal", T.replace(tzinfo=None))
    assert derived_id("signal", T) != derived_id("signal", T + timedelta(microseconds=1))


def test_parts_of_other_types_are_refused():
    with pytest.raises(TypeError, match="not list"):
        derived_id("decision", ["a", "b"])
    with pytest.raises(TypeError, match="not NoneType"):
        derived_id("decision", None)


def test_remember_id_says_none_for_a_repeat_and_keeps_the_last_n():
    state = {"cash": 1.0}
    once = remember_id(state, "ids", "a", keep=2)
    assert once == {"cash": 1.0, "ids": ["a"]} and state == {"cash": 1.0}
    assert remember_id(once, "ids", "a", keep=2) is None
    later = remember_id(remember_id(once, "ids", "b", keep=2), "ids", "c", keep=2)
    assert later["ids"] == ["b", "c"]  # "a" has aged out
