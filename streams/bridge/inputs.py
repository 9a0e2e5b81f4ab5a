"""Pure validation of what clients send the bridge: JSON bodies for ticks and news, query parameters.

Every problem becomes an `InputProblem` naming the field (a path like `[3].price` inside a list) and
what is wrong with it; the REST layer turns the first one into a 400 body
`{"error": ..., "field": ..., "problem": ..., "errors": [...]}`. The records that pass are exactly
what the Avro schemas accept (checked again with `streams.bus.schemas.validation_errors`), plus the
bridge's own rules: finite positive prices, no NUL characters (Postgres text cannot hold them),
bounded lengths.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from streams.bus.schemas import validation_errors

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Timestamps from year 1000 to 8999: far from the ends of what Avro's timestamp-micros decodes to
# (Python datetimes stop at years 1 and 9999, so an offset there would overflow in every consumer).
MIN_YEAR, MAX_YEAR = 1000, 8999
MIN_TS = datetime(MIN_YEAR, 1, 1, tzinfo=timezone.utc)
MAX_TS = datetime(MAX_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
MIN_EPOCH_MICROS = (MIN_TS - EPOCH) // timedelta(microseconds=1)
MAX_EPOCH_MICROS = (MAX_TS - EPOCH) // timedelta(microseconds=1)
TIMESTAMP_PATTERN = r"^[1-8][0-9]{3}-"  # the year range above, for the OpenAPI document
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

SYMBOL_PATTERN = r"^[A-Za-z0-9.^=:/_-]{1,32}$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
INTERVAL_PATTERN = r"^[0-9]{1,6}[smhd]$"
INTERVAL_RE = re.compile(INTERVAL_PATTERN)
MAX_PRICE = 1e12      # market_data is NUMERIC(20, 6): below 10^14, with room for aggregates
MAX_SIZE = 1e15       # volumes are NUMERIC(24, 6)
MAX_BATCH = 5000      # records per POST
DEFAULT_SOURCE = "bridge"
TICK_FIELDS = ("symbol", "ts", "price", "size", "source", "seq")
NEWS_FIELDS = ("id", "ts", "source", "headline", "body", "symbols", "url")


@dataclass(frozen=True)
class InputProblem:
    field: str | None
    problem: str

    def as_dict(self) -> dict:
        return {"field": self.field, "problem": self.problem}


class InputError(ValueError):
    """One or more problems with a request; `problems[0]` is the one named in the 400 body."""

    def __init__(self, error: str, problems: list[InputProblem]) -> None:
        super().__init__(f"{error}: {problems[0].field}: {problems[0].problem}" if problems else error)
        self.error = error
        self.problems = problems

    def body(self) -> dict:
        first = self.problems[0] if self.problems else InputProblem(None, self.error)
        return {"error": self.error, "field": first.field, "problem": first.problem,
                "errors": [p.as_dict() for p in self.problems[:50]]}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, not absurdly nested."""
    if not body.strip():
        raise InputError("empty body", [InputProblem(None, "expected a JSON body")])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError("invalid JSON", [InputProblem(None, f"body is not UTF-8 ({error.reason} at byte {error.start})")]) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError("invalid JSON", [InputProblem(None, "nested too deeply")]) from None
    except ValueError as error:
        raise InputError("invalid JSON", [InputProblem(None, str(error))]) from None


# --- field checkers: each returns the clean value or raises _Bad -------------------------------------------


class _Bad(Exception):
    def __init__(self, problem: str) -> None:
        self.problem = problem


def _text(value: Any, *, max_len: int, min_len: int = 1) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {_kind(value)}")
    if len(value) < min_len:
        raise _Bad("must not be empty")
    if len(value) > max_len:
        raise _Bad(f"longer than {max_len} characters")
    if "\x00" in value:
        raise _Bad("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad("is not valid Unicode (lone surrogate)") from None
    return value


def _symbol(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {_kind(value)}")
    if not SYMBOL_RE.match(value):
        raise _Bad("must be 1-32 characters of A-Z a-z 0-9 . ^ = : / _ -")
    return value


def _number(value: Any, *, minimum: float, maximum: float, exclusive_minimum: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any double
        raise _Bad(f"must be below {maximum:g}") from None
    if not math.isfinite(number):
        raise _Bad("must be a finite number")
    if number < minimum or (exclusive_minimum and number == minimum):
        raise _Bad(f"must be {'>' if exclusive_minimum else '>='} {minimum:g}")
    if number >= maximum:
        raise _Bad(f"must be below {maximum:g}")
    return number


def _integral(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5 (as JSON Schema says)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _integer(value: Any, *, minimum: int, maximum: int) -> int:
    value = _integral(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be an integer, got {_kind(value)}")
    if not minimum <= value <= maximum:
        raise _Bad(f"must be between {minimum} and {maximum}")
    return value


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 text (no zone means UTC) or an integer of microseconds since the epoch; years 1000-8999."""
    value = _integral(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Bad(f"must be an ISO 8601 string or integer epoch microseconds, got {_kind(value)}")
    if isinstance(value, int):
        if not MIN_EPOCH_MICROS <= value <= MAX_EPOCH_MICROS:
            raise _Bad(f"epoch microseconds out of range ({MIN_EPOCH_MICROS}..{MAX_EPOCH_MICROS})")
        return EPOCH + timedelta(microseconds=value)
    text = value.strip()
    if not text or len(text) > 64:
        raise _Bad("not an ISO 8601 timestamp")
    normalised = text[:-1] + "+00:00" if text[-1] in "zZ" else text
    if len(normalised) > 10 and normalised[10] in "tT ":
        normalised = normalised[:10] + "T" + normalised[11:]
    normalised = _trim_fraction(normalised)
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError:
        raise _Bad(f"not an ISO 8601 timestamp: {text[:40]!r}") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _Bad(f"year {parsed.year} out of range ({MIN_YEAR}..{MAX_YEAR})")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d{7,})")


def _trim_fraction(text: str) -> str:
    """Nanosecond fractions (RFC 3339 allows any number of digits) are cut to microseconds."""
    return _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6]}", text)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


# --- records ------------------------------------------------------------------------------------------------

Rule = Callable[[Any], Any]


def _record(obj: Any, path: str, rules: dict[str, Rule], required: tuple[str, ...], defaults: dict[str, Callable[[], Any]],
            what: str, problems: list[InputProblem]) -> dict | None:
    if not isinstance(obj, dict):
        problems.append(InputProblem(path or None, f"expected a JSON object ({what}), got {_kind(obj)}"))
        return None
    record: dict = {}
    ok = True
    for name in obj:
        if name not in rules:
            problems.append(InputProblem(f"{path}{_sep(path)}{name}"[:200], f"unknown field (known: {', '.join(rules)})"))
            ok = False
    for name, rule in rules.items():
        field = f"{path}{_sep(path)}{name}"
        if name not in obj:
            if name in required:
                problems.append(InputProblem(field, "is required"))
                ok = False
            else:
                record[name] = defaults[name]()
            continue
        try:
            record[name] = rule(obj[name])
        except _Bad as bad:
            problems.append(InputProblem(field, bad.problem))
            ok = False
    return record if ok else None


def _sep(path: str) -> str:
    return "." if path else ""


def _tick_rules() -> dict[str, Rule]:
    return {
        "symbol": _symbol,
        "ts": parse_timestamp,
        "price": lambda v: _number(v, minimum=0.0, maximum=MAX_PRICE, exclusive_minimum=True),
        "size": lambda v: _number(v, minimum=0.0, maximum=MAX_SIZE, exclusive_minimum=False),
        "source": lambda v: _text(v, max_len=64),
        "seq": lambda v: _integer(v, minimum=-1, maximum=LONG_MAX),
    }


def _symbols(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Bad(f"must be a list of symbols, got {_kind(value)}")
    if len(value) > 100:
        raise _Bad("at most 100 symbols")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_symbol(item))
        except _Bad as bad:
            raise _Bad(f"item {i} {bad.problem}") from None
    return out


def _url(value: Any) -> str | None:
    if value is None:
        return None
    return _text(value, max_len=2048)


def _news_rules() -> dict[str, Rule]:
    return {
        "id": lambda v: _text(v, max_len=128),
        "ts": parse_timestamp,
        "source": lambda v: _text(v, max_len=64),
        "headline": lambda v: _text(v, max_len=1000),
        "body": lambda v: _text(v, max_len=100_000, min_len=0),
        "symbols": _symbols,
        "url": _url,
    }


TICK_DEFAULTS = {"source": lambda: DEFAULT_SOURCE, "seq": lambda: -1}
NEWS_DEFAULTS = {"id": lambda: str(uuid.uuid4()), "source": lambda: DEFAULT_SOURCE, "body": lambda: "",
                 "symbols": list, "url": lambda: None}


def _batch(body: Any, rules: dict[str, Rule], required: tuple[str, ...], defaults: dict, what: str, plural: str,
           schema: str) -> list[dict]:
    items, listed = (body, True) if isinstance(body, list) else ([body], False)
    if listed and not items:
        raise InputError(f"invalid {what}", [InputProblem(None, f"empty list: send at least one {what}")])
    if len(items) > MAX_BATCH:
        raise InputError(f"too many {plural}", [InputProblem(None, f"at most {MAX_BATCH} {plural} per request, got {len(items)}")])
    problems: list[InputProblem] = []
    records = []
    for index, item in enumerate(items):
        path = f"[{index}]" if listed else ""
        record = _record(item, path, rules, required, defaults, what, problems)
        if record is None:
            if len(problems) >= 50:
                break
            continue
        for message in validation_errors(schema, record):  # the schema itself, as a last word
            problems.append(InputProblem(_schema_field(message, path), message))
        records.append(record)
    if problems:
        raise InputError(f"invalid {what}", problems)
    return records


def _schema_field(message: str, path: str) -> str | None:
    head = message.split(" ", 1)[0]
    name = head.rsplit(".", 1)[-1] if "." in head else None
    return f"{path}{_sep(path)}{name}" if name else (path or None)


def parse_ticks(body: Any) -> list[dict]:
    """A tick object or a list of them -> MarketTick records (source defaults to "bridge", seq to -1)."""
    return _batch(body, _tick_rules(), ("symbol", "ts", "price", "size"), TICK_DEFAULTS, "tick", "ticks", "MarketTick")


def parse_news(body: Any) -> list[dict]:
    """A news object or a list of them -> NewsItem records (id defaults to a new UUID)."""
    return _batch(body, _news_rules(), ("ts", "headline"), NEWS_DEFAULTS, "news item", "news items", "NewsItem")


# --- query parameters (an empty value is an error, not "absent") ------------------------------------------

_INT_RE = re.compile(r"^-?[0-9]{1,12}$")


def _query_error(name: str, problem: str) -> InputError:
    return InputError(f"invalid query parameter {name}", [InputProblem(name, problem)])


def query_int(query, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _INT_RE.match(raw):
        raise _query_error(name, f"must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise _query_error(name, f"must be between {minimum} and {maximum}")
    return value


def query_symbol(query, name: str = "symbol") -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not SYMBOL_RE.match(raw):
        raise _query_error(name, "must be 1-32 characters of A-Z a-z 0-9 . ^ = : / _ -")
    return raw


def query_text(query, name: str, max_len: int = 64) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return _text(raw, max_len=max_len)
    except _Bad as bad:
        raise _query_error(name, bad.problem) from None


def query_interval(query, default: str) -> str:
    raw = query.get("interval")
    if raw is None:
        return default
    if not INTERVAL_RE.match(raw):
        raise _query_error("interval", "must look like 1d, 15m, 30s or 4h")
    return raw
