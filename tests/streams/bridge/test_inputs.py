"""Validation of what clients send: every bad input names its field and its problem."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest
from multidict import MultiDict

from streams.bridge.inputs import (
    MAX_BATCH, InputError, parse_json, parse_news, parse_ticks, parse_timestamp, query_int, query_interval, query_symbol,
    query_text,
)
from streams.bus.schemas import validation_errors


def good_tick(**overrides) -> dict:
    tick = {"symbol": "AAPL", "ts": "2013-03-01T14:30:00Z", "price": 438.0, "size": 100}
    tick.update(overrides)
    return tick


def problem(call, *args) -> tuple[str | None, str]:
    with pytest.raises(InputError) as caught:
        call(*args)
    body = caught.value.body()
    assert set(body) >= {"error", "field", "problem", "errors"}
    return body["field"], body["problem"]


def test_a_tick_gets_defaults_and_fits_the_schema():
    [record] = parse_ticks(good_tick())
    assert record == {"symbol": "AAPL", "ts": datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc), "price": 438.0,
                      "size": 100.0, "source": "bridge", "seq": -1}
    assert validation_errors("MarketTick", record) == []


def test_integral_numbers_are_integers():
    [record] = parse_ticks(good_tick(ts=1_362_148_200_000_000.0, seq=7.0))
    assert record["seq"] == 7 and isinstance(record["seq"], int)
    assert record["ts"] == datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc)


def test_a_list_of_ticks_and_epoch_micros():
    records = parse_ticks([good_tick(), good_tick(symbol="MSFT", ts=1_362_148_200_000_000, source="feed", seq=7)])
    assert [r["symbol"] for r in records] == ["AAPL", "MSFT"]
    assert records[1]["ts"] == datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc)
    assert (records[1]["source"], records[1]["seq"]) == ("feed", 7)


@pytest.mark.parametrize("text, expected", [
    ("2013-03-01T14:30:00Z", datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc)),
    ("2013-03-01T14:30:00", datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc)),  # no zone: UTC
    ("2013-03-01 15:30:00+01:00", datetime(2013, 3, 1, 14, 30, tzinfo=timezone.utc)),
    ("2013-03-01t14:30:00.123456789z", datetime(2013, 3, 1, 14, 30, 0, 123456, tzinfo=timezone.utc)),
    ("2013-03-01", datetime(2013, 3, 1, tzinfo=timezone.utc)),
])
def test_timestamps(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("body, field, words", [
    (good_tick(price=0), "price", "> 0"),
    (good_tick(price=-1.5), "price", "> 0"),
    (good_tick(price=float("inf")), "price", "finite"),
    (good_tick(price="438"), "price", "must be a number"),
    (good_tick(price=True), "price", "must be a number"),
    (good_tick(price=1e13), "price", "below"),
    (good_tick(price=10**400), "price", "below"),
    (good_tick(size=-1), "size", ">= 0"),
    (good_tick(symbol=""), "symbol", "1-32"),
    (good_tick(symbol="A" * 33), "symbol", "1-32"),
    (good_tick(symbol="AA PL"), "symbol", "1-32"),
    (good_tick(symbol=5), "symbol", "must be a string"),
    (good_tick(symbol="AAPL\n"), "symbol", "1-32"),  # full matches: `$` would allow a final newline
    (good_tick(ts="yesterday"), "ts", "ISO 8601"),
    (good_tick(ts=1.5), "ts", "ISO 8601 string or integer"),
    (good_tick(ts=10**20), "ts", "out of range"),
    (good_tick(ts="0001-01-01T00:00:00+01:00"), "ts", "year 1 out of range"),
    (good_tick(ts="9999-12-31T23:00:00-01:00"), "ts", "year 9999 out of range"),
    (good_tick(seq=-2), "seq", "between"),
    (good_tick(seq=1.5), "seq", "must be an integer"),
    (good_tick(seq=2**63), "seq", "between"),
    (good_tick(source=""), "source", "empty"),
    (good_tick(source="a\x00b"), "source", "NUL"),
    (good_tick(source="\ud800"), "source", "surrogate"),
    (good_tick(extra=1), "extra", "unknown field"),
    ({"symbol": "AAPL", "price": 1, "size": 1}, "ts", "required"),
    ("AAPL", None, "expected a JSON object"),
    ([good_tick(), good_tick(price=-1)], "[1].price", "> 0"),
    ([good_tick(), 3], "[1]", "expected a JSON object"),
    ([], None, "empty list"),
])
def test_bad_ticks_name_the_field(body, field, words):
    got_field, got_problem = problem(parse_ticks, body)
    assert got_field == field
    assert words in got_problem


def test_every_problem_is_listed_not_just_the_first():
    with pytest.raises(InputError) as caught:
        parse_ticks({"symbol": "", "ts": "x", "price": -1, "size": -1})
    assert [e["field"] for e in caught.value.body()["errors"]] == ["symbol", "ts", "price", "size"]


def test_too_many_ticks():
    field, text = problem(parse_ticks, [good_tick()] * (MAX_BATCH + 1))
    assert field is None and str(MAX_BATCH) in text


def test_news_defaults_and_checks():
    [item] = parse_news({"ts": "2013-03-01T12:00:00Z", "headline": "Apple beats", "symbols": ["AAPL"]})
    assert item["source"] == "bridge" and item["body"] == "" and item["url"] is None and len(item["id"]) == 36
    assert validation_errors("NewsItem", item) == []
    assert problem(parse_news, {"ts": "2013-03-01", "headline": ""}) == ("headline", "must not be empty")
    assert problem(parse_news, {"ts": "2013-03-01", "headline": "x", "symbols": ["ok", "not ok"]})[0] == "symbols"
    assert problem(parse_news, {"ts": "2013-03-01", "headline": "x", "url": 3})[0] == "url"
    assert problem(parse_news, {"headline": "x"}) == ("ts", "is required")


@pytest.mark.parametrize("raw, words", [
    (b"", "expected a JSON body"),
    (b"{", "Expecting"),
    (b'{"price": NaN}', "NaN is not valid JSON"),
    (b'{"price": Infinity}', "Infinity is not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_strict_json(raw, words):
    assert words in problem(parse_json, raw)[1]


def test_large_json_numbers_are_not_finite_prices():
    body = parse_json(b'{"symbol": "A", "ts": 0, "price": 1e400, "size": 1}')
    assert math.isinf(body["price"])
    assert problem(parse_ticks, body) == ("price", "must be a finite number")


def test_query_parameters():
    q = MultiDict
    assert query_int(q(), "limit", 50, 1, 1000) == 50
    assert query_int(q(limit="7"), "limit", 50, 1, 1000) == 7
    for bad in ("0", "1001", "abc", "1.5", "+5", "", " 5", "9" * 40):
        with pytest.raises(InputError) as caught:
            query_int(q(limit=bad), "limit", 50, 1, 1000)
        assert caught.value.body()["field"] == "limit"
    assert query_symbol(q(symbol="BRK.B")) == "BRK.B"
    assert query_symbol(q()) is None
    for bad in ("", "a b", "x" * 33, "\x00"):
        with pytest.raises(InputError):
            query_symbol(q(symbol=bad))
    assert query_interval(q(), "1d") == "1d" and query_interval(q(interval="15m"), "1d") == "15m"
    with pytest.raises(InputError):
        query_interval(q(interval="1w"), "1d")
    assert query_text(q(account="paper"), "account") == "paper"
    with pytest.raises(InputError):
        query_text(q(account="a\x00"), "account")


def test_error_body_is_json_serialisable():
    with pytest.raises(InputError) as caught:
        parse_ticks([good_tick(price=-1)] * 80)
    body = caught.value.body()
    assert len(body["errors"]) == 50
    json.dumps(body)


def test_symbols_and_parameters_are_full_matches():
    """re's `$` matches before a trailing newline; every check must see the whole value."""
    q = MultiDict
    assert problem(parse_news, {"ts": "2013-03-01", "headline": "x", "symbols": ["AAPL\n"]}) == \
        ("symbols", "item 0 must be 1-32 characters of A-Z a-z 0-9 . ^ = : / _ -")
    for call, args in [(query_symbol, (q(symbol="AAPL\n"),)), (query_interval, (q(interval="1d\n"), "1d")),
                       (query_int, (q(limit="5\n"), "limit", 50, 1, 1000))]:
        with pytest.raises(InputError):
            call(*args)
