"""Pure validation of what clients send the bridge: JSON bodies for ticks and news (checked with the
pydantic models of streams.bridge.models, the one definition of what the bridge accepts), query
parameters.

Every problem becomes an `InputProblem` naming the field (a path like `[3].price` inside a list) and
what is wrong with it; the REST layer turns the first one into a 400 body
`{"error": ..., "field": ..., "problem": ..., "errors": [...]}`. The records that pass are exactly
what the Avro schemas accept (checked again with `streams.bus.schemas.validation_errors`), plus the
bridge's own rules (see streams.bridge.models).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from streams.bridge.models import (  # noqa: F401 - the validation constants, importable from here too
    DEFAULT_SOURCE, LONG_MAX, LONG_MIN, MAX_BATCH, MAX_EPOCH_MICROS, MAX_PRICE, MAX_SIZE, MIN_EPOCH_MICROS,
    NO_NUL_PATTERN, SYMBOL_PATTERN, SYMBOL_PROBLEM, SYMBOL_RE, TIMESTAMP_PATTERN, BadTimestamp, NewsItem, Tick,
    bounded_text, field_schema, kind,
)
from streams.bridge.models import parse_timestamp as _parse_timestamp
from streams.bus.schemas import validation_errors

INTERVAL_PATTERN = r"^[0-9]{1,6}[smhd]$"
INTERVAL_RE = re.compile(INTERVAL_PATTERN)
TICK_FIELDS = tuple(Tick.model_fields)
NEWS_FIELDS = tuple(NewsItem.model_fields)


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
        text_ = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError("invalid JSON", [InputProblem(None, f"body is not UTF-8 ({error.reason} at byte {error.start})")]) from None
    try:
        return json.loads(text_, parse_constant=_reject_constant)
    except RecursionError:
        raise InputError("invalid JSON", [InputProblem(None, "nested too deeply")]) from None
    except ValueError as error:
        raise InputError("invalid JSON", [InputProblem(None, str(error))]) from None


def parse_timestamp(value: Any):
    """ISO 8601 text (no zone means UTC) or integer epoch microseconds -> an aware UTC datetime."""
    try:
        return _parse_timestamp(value)
    except BadTimestamp as bad:
        raise InputError("invalid timestamp", [InputProblem(None, str(bad))]) from None


# --- pydantic's errors, in the bridge's words ---------------------------------------------------------------


def _bounds(schema: dict) -> str | None:
    """"between a and b" when a field has both an inclusive minimum and maximum."""
    if "minimum" in schema and "maximum" in schema:
        return f"must be between {schema['minimum']} and {schema['maximum']}"
    return None


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def problem_text(error: dict, schema: dict, known: tuple[str, ...] = ()) -> str:
    """One pydantic error (from ValidationError.errors()) as the bridge says it; `schema` is the JSON
    Schema of the field it is about (its limits)."""
    kind_, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind_ == "missing":
        return "is required"
    if kind_ == "extra_forbidden":
        return f"unknown field (known: {', '.join(known)})"
    if kind_ in ("string_type", "string_sub_type"):
        return f"must be a string, got {kind(value)}"
    if kind_ == "string_unicode":
        return "is not valid Unicode (lone surrogate)"
    if kind_ == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"shorter than {ctx.get('min_length')} characters"
    if kind_ == "string_too_long":
        return f"longer than {ctx.get('max_length')} characters"
    if kind_ == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == SYMBOL_PATTERN:
            return SYMBOL_PROBLEM
        if pattern == NO_NUL_PATTERN:
            return "must not contain NUL characters"
        return f"must match {pattern}"
    if kind_ in ("float_type", "float_parsing"):
        if isinstance(value, int) and not isinstance(value, bool) and "exclusiveMaximum" in schema:
            return f"must be below {_number_text(schema['exclusiveMaximum'])}"  # an integer beyond any double
        return f"must be a number, got {kind(value)}"
    if kind_ == "finite_number":
        return "must be a finite number"
    if kind_ in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {kind(value)}"
    if kind_ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        between = _bounds(schema)
        if between:
            return between
        if kind_ == "greater_than":
            return f"must be > {_number_text(ctx['gt'])}"
        if kind_ == "greater_than_equal":
            return f"must be >= {_number_text(ctx['ge'])}"
        if kind_ == "less_than":
            return f"must be below {_number_text(ctx['lt'])}"
        return f"must be <= {_number_text(ctx['le'])}"
    if kind_ == "list_type":
        return f"must be a list, got {kind(value)}"
    if kind_ == "too_long":
        return f"at most {ctx.get('max_length')} items"
    if kind_ == "timestamp":
        return error["msg"]
    return error["msg"]


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def model_problems(error: ValidationError, model: type[BaseModel], path: str, what: str) -> list[InputProblem]:
    """A model's ValidationError -> problems naming fields as `[3].price`, list items as `item 2 ...`."""
    problems = []
    known = tuple(model.model_fields)
    for item in error.errors(include_url=False):
        loc = item["loc"]
        if not loc:
            if item["type"] == "model_type":
                problems.append(InputProblem(path or None, f"expected a JSON object ({what}), got {kind(item.get('input'))}"))
            else:
                problems.append(InputProblem(path or None, item["msg"]))
            continue
        name, rest = loc[0], loc[1:]
        schema = field_schema(model, str(name))
        if rest and isinstance(rest[0], int):  # an item of a list field
            items = schema.get("items", {})
            text_ = problem_text(item, items, known)
            problems.append(InputProblem(_join(path, name)[:200], f"item {rest[0]} {text_}"))
            continue
        problems.append(InputProblem(_join(path, name)[:200], problem_text(item, schema, known)))
    return problems


# --- records ------------------------------------------------------------------------------------------------


def _batch(body: Any, model: type[BaseModel], what: str, plural: str, schema: str) -> list[dict]:
    items, listed = (body, True) if isinstance(body, list) else ([body], False)
    if listed and not items:
        raise InputError(f"invalid {what}", [InputProblem(None, f"empty list: send at least one {what}")])
    if len(items) > MAX_BATCH:
        raise InputError(f"too many {plural}", [InputProblem(None, f"at most {MAX_BATCH} {plural} per request, got {len(items)}")])
    problems: list[InputProblem] = []
    records = []
    for index, item in enumerate(items):
        path = f"[{index}]" if listed else ""
        try:
            record = model.model_validate(item).model_dump()
        except ValidationError as error:
            problems.extend(model_problems(error, model, path, what))
            if len(problems) >= 50:
                break
            continue
        for message in validation_errors(schema, record):  # the Avro schema itself, as a last word
            problems.append(InputProblem(_schema_field(message, path), message))
        records.append(record)
    if problems:
        raise InputError(f"invalid {what}", problems)
    return records


def _schema_field(message: str, path: str) -> str | None:
    head = message.split(" ", 1)[0]
    name = head.rsplit(".", 1)[-1] if "." in head else None
    return f"{path}{'.' if path else ''}{name}" if name else (path or None)


def parse_ticks(body: Any) -> list[dict]:
    """A tick object or a list of them -> MarketTick records (source defaults to "bridge", seq to -1)."""
    return _batch(body, Tick, "tick", "ticks", "MarketTick")


def parse_news(body: Any) -> list[dict]:
    """A news object or a list of them -> NewsItem records (id defaults to a new UUID)."""
    return _batch(body, NewsItem, "news item", "news items", "NewsItem")


# --- query parameters (an empty value is an error, not "absent") ------------------------------------------

_INT_RE = re.compile(r"-?[0-9]{1,12}")


def _query_error(name: str, problem: str) -> InputError:
    return InputError(f"invalid query parameter {name}", [InputProblem(name, problem)])


def query_int(query, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw):
        raise _query_error(name, f"must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise _query_error(name, f"must be between {minimum} and {maximum}")
    return value


def query_symbol(query, name: str = "symbol") -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not SYMBOL_RE.fullmatch(raw):
        raise _query_error(name, SYMBOL_PROBLEM)
    return raw


def query_text(query, name: str, max_len: int = 64) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return _text_adapter(max_len).validate_python(raw)
    except ValidationError as error:
        raise _query_error(name, problem_text(error.errors(include_url=False)[0], {})) from None


@lru_cache(maxsize=None)
def _text_adapter(max_len: int) -> TypeAdapter:
    return TypeAdapter(bounded_text(max_len), config={"strict": True})


def query_interval(query, default: str) -> str:
    raw = query.get("interval")
    if raw is None:
        return default
    if not INTERVAL_RE.fullmatch(raw):
        raise _query_error("interval", "must look like 1d, 15m, 30s or 4h")
    return raw


_EPOCH_RE = re.compile(r"-?[0-9]{1,19}")


def query_time(query, name: str):
    """An ISO 8601 time (no zone means UTC) or integer epoch microseconds -> an aware UTC datetime, or None."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return _parse_timestamp(int(raw) if _EPOCH_RE.fullmatch(raw) else raw)
    except BadTimestamp as bad:
        raise _query_error(name, str(bad)) from None
