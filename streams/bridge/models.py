"""What the bridge accepts in POST bodies, as pydantic models: the one definition behind the request
validation (streams.bridge.inputs turns their errors into 400 bodies) and the OpenAPI request bodies
(streams.bridge.api takes `model_json_schema()`). `avro_mismatches` compares a model with its Avro
schema field by field; a test holds them together.

Beyond what Avro says, the bridge's own rules: finite positive prices below what Postgres stores, no
NUL characters (Postgres text cannot hold them), bounded lengths, symbols of 1-32 safe characters,
timestamps as ISO 8601 text or epoch microseconds in years 1000-8999.
"""
from __future__ import annotations

import enum
import math
import re
import typing
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints, TypeAdapter
from pydantic import WithJsonSchema
from pydantic_core import PydanticCustomError, PydanticUndefined

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

# Anchored for JSON Schema (and pydantic's Rust regex, where `$` is the very end); Python code that
# checks a symbol uses SYMBOL_RE.fullmatch, since re's `$` also matches before a final newline.
SYMBOL_PATTERN = r"^[A-Za-z0-9.^=:/_-]{1,32}$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
SYMBOL_PROBLEM = "must be 1-32 characters of A-Z a-z 0-9 . ^ = : / _ -"
NO_NUL_PATTERN = "^[^\\u0000]*$"
MAX_PRICE = 1e12      # market_data is NUMERIC(20, 6): below 10^14, with room for aggregates
MAX_SIZE = 1e15       # volumes are NUMERIC(24, 6)
MAX_BATCH = 5000      # records per POST
MAX_NEWS_SYMBOLS = 100
DEFAULT_SOURCE = "bridge"


# --- timestamps ------------------------------------------------------------------------------------------


class BadTimestamp(ValueError):
    pass


def integral(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5 (as JSON Schema says)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 text (no zone means UTC) or an integer of microseconds since the epoch; years 1000-8999.
    BadTimestamp says what is wrong."""
    value = integral(value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadTimestamp(f"must be an ISO 8601 string or integer epoch microseconds, got {kind(value)}")
    if isinstance(value, int):
        if not MIN_EPOCH_MICROS <= value <= MAX_EPOCH_MICROS:
            raise BadTimestamp(f"epoch microseconds out of range ({MIN_EPOCH_MICROS}..{MAX_EPOCH_MICROS})")
        return EPOCH + timedelta(microseconds=value)
    text = value.strip()
    if not text or len(text) > 64:
        raise BadTimestamp("not an ISO 8601 timestamp")
    normalised = text[:-1] + "+00:00" if text[-1] in "zZ" else text
    if len(normalised) > 10 and normalised[10] in "tT ":
        normalised = normalised[:10] + "T" + normalised[11:]
    normalised = _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2)[:6]}", normalised)
    try:
        parsed = datetime.fromisoformat(normalised)
    except ValueError:
        raise BadTimestamp(f"not an ISO 8601 timestamp: {text[:40]!r}") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise BadTimestamp(f"year {parsed.year} out of range ({MIN_YEAR}..{MAX_YEAR})")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


# RFC 3339 allows any number of fraction digits; nanoseconds are cut to microseconds
_FRACTION = re.compile(r"(T\d\d:\d\d:\d\d)\.(\d{7,})")


def kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _timestamp(value: Any) -> datetime:
    try:
        return parse_timestamp(value)
    except BadTimestamp as bad:
        raise PydanticCustomError("timestamp", str(bad)) from None


TIMESTAMP_SCHEMA = {"oneOf": [
    {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN,
     "description": "ISO 8601 / RFC 3339 (no zone means UTC), years 1000 to 8999"},
    {"type": "integer", "minimum": MIN_EPOCH_MICROS, "maximum": MAX_EPOCH_MICROS,
     "description": "microseconds since 1970-01-01T00:00:00Z"},
]}

# --- field types -----------------------------------------------------------------------------------------

Timestamp = Annotated[datetime, PlainValidator(_timestamp), WithJsonSchema(TIMESTAMP_SCHEMA)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN), Field(examples=["AAPL"])]


def bounded_text(max_length: int, min_length: int = 1) -> Any:
    """A string type of min..max characters without NUL."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL_PATTERN)]


class Tick(BaseModel):
    """One trade print, as POST /v1/ticks takes it (a MarketTick once defaults are filled in)."""
    model_config = ConfigDict(extra="forbid", strict=True, title="Tick", json_schema_extra={
        "example": {"symbol": "AAPL", "ts": "2013-03-01T14:30:00Z", "price": 438.0, "size": 100.0}})

    symbol: Symbol
    ts: Timestamp
    price: Annotated[float, Field(gt=0, lt=MAX_PRICE, allow_inf_nan=False)]
    size: Annotated[float, Field(ge=0, lt=MAX_SIZE, allow_inf_nan=False)]
    source: bounded_text(64) = DEFAULT_SOURCE
    seq: Annotated[int, Field(ge=-1, le=LONG_MAX), BeforeValidator(integral)] = Field(
        -1, description="increasing per source for de-duplication by the bars agent; -1: none")


class NewsItem(BaseModel):
    """A news item, as POST /v1/news takes it (a NewsItem record once defaults are filled in)."""
    model_config = ConfigDict(extra="forbid", strict=True, title="NewsItem", json_schema_extra={
        "example": {"ts": "2013-03-01T12:00:00Z", "headline": "Apple beats estimates", "symbols": ["AAPL"]}})

    id: bounded_text(128) = Field(default_factory=lambda: str(uuid.uuid4()), description="default: a new UUID")
    ts: Timestamp
    source: bounded_text(64) = DEFAULT_SOURCE
    headline: bounded_text(1000)
    body: bounded_text(100_000, 0) = ""
    symbols: Annotated[list[Symbol], Field(max_length=MAX_NEWS_SYMBOLS)] = Field(
        default_factory=list, json_schema_extra={"default": []})
    url: Optional[bounded_text(2048)] = None


# the POST bodies: one record or a non-empty list of them
TickBody = Union[Tick, Annotated[list[Tick], Field(min_length=1, max_length=MAX_BATCH)]]
NewsBody = Union[NewsItem, Annotated[list[NewsItem], Field(min_length=1, max_length=MAX_BATCH)]]

# what each POST route takes: (Avro schema of the record, item model, body type)
REQUEST_MODELS: dict[str, tuple[str, type[BaseModel], Any]] = {
    "TickBody": ("MarketTick", Tick, TickBody),
    "NewsBody": ("NewsItem", NewsItem, NewsBody),
}


def component_schemas() -> dict[str, dict]:
    """JSON Schemas of the request bodies and their records, for the OpenAPI document's components."""
    out: dict[str, dict] = {}
    for name, (_, _, body) in REQUEST_MODELS.items():
        schema = TypeAdapter(body).json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out


def field_schema(model: type[BaseModel], name: str) -> dict:
    """The JSON Schema of one field (its constraints name the limits in error messages)."""
    return _model_schema(model)["properties"].get(name, {})


_SCHEMAS: dict[type, dict] = {}


def _model_schema(model: type[BaseModel]) -> dict:
    if model not in _SCHEMAS:
        _SCHEMAS[model] = model.model_json_schema()
    return _SCHEMAS[model]


# --- agreement with the Avro schemas ---------------------------------------------------------------------

_AVRO_PRIMITIVES: dict[str, type] = {"string": str, "long": int, "int": int, "double": float, "float": float,
                                     "boolean": bool, "bytes": bytes}


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] -> X (constraints are not types)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _type_mismatch(avro: Any, annotation: Any, where: str) -> str | None:
    annotation = _strip(annotation)
    if isinstance(avro, list):  # a union: ["null", X] is Optional[X]
        branches = [b for b in avro if b != "null"]
        args = [a for a in typing.get_args(annotation)] if typing.get_origin(annotation) is Union else [annotation]
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if ("null" in avro) != nullable:
            return f"{where}: Avro {'allows' if 'null' in avro else 'does not allow'} null, the model " \
                   f"{'does' if nullable else 'does not'}"
        if len(branches) != len(rest):
            return f"{where}: Avro union of {len(branches)} non-null type(s), the model has {len(rest)}"
        for branch, arg in zip(branches, rest):
            problem = _type_mismatch(branch, arg, where)
            if problem:
                return problem
        return None
    if typing.get_origin(annotation) is Union:
        if type(None) in typing.get_args(annotation):
            return f"{where}: the model allows null, Avro does not"
        return f"{where}: the model allows {annotation}, Avro only {avro}"
    if isinstance(avro, dict):
        kind_ = avro["type"]
        if avro.get("logicalType") in ("timestamp-micros", "timestamp-millis"):
            return None if annotation is datetime else f"{where}: Avro {avro['logicalType']}, the model {annotation}"
        if kind_ == "array":
            if typing.get_origin(annotation) is not list:
                return f"{where}: Avro array, the model {annotation}"
            return _type_mismatch(avro["items"], typing.get_args(annotation)[0], f"{where}[]")
        if kind_ == "enum":
            if typing.get_origin(annotation) is Literal:
                symbols = list(typing.get_args(annotation))
            elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                symbols = [member.value for member in annotation]
            else:
                return f"{where}: Avro enum {avro['symbols']}, the model {annotation}"
            return None if sorted(symbols) == sorted(avro["symbols"]) else \
                f"{where}: Avro enum {avro['symbols']}, the model {symbols}"
        return _type_mismatch(kind_, annotation, where)
    expected = _AVRO_PRIMITIVES.get(avro)
    if expected is None:
        return f"{where}: Avro type {avro!r} has no check here"
    return None if annotation is expected else f"{where}: Avro {avro}, the model {getattr(annotation, '__name__', annotation)}"


def avro_mismatches(model: type[BaseModel], avro_schema: dict) -> list[str]:
    """Where `model` and an Avro record schema disagree: field names, types, nullability, enum
    symbols, and defaults. A field Avro requires may have a default in the model (the bridge fills it
    in, so the record always has it); a field with an Avro default has the same default in the model."""
    problems = []
    avro_fields = {f["name"]: f for f in avro_schema["fields"]}
    fields = model.model_fields
    for name in fields.keys() - avro_fields.keys():
        problems.append(f"{name}: in the model, not in Avro {avro_schema['name']}")
    for name, avro_field in avro_fields.items():
        field = fields.get(name)
        if field is None:
            problems.append(f"{name}: in Avro {avro_schema['name']}, not in the model")
            continue
        problem = _type_mismatch(avro_field["type"], field.annotation, name)
        if problem:
            problems.append(problem)
        if "default" in avro_field:
            if field.is_required():
                problems.append(f"{name}: optional in Avro (default {avro_field['default']!r}), required in the model")
            else:
                default = field.default_factory() if field.default_factory is not None else field.default
                if default != avro_field["default"]:
                    problems.append(f"{name}: default {avro_field['default']!r} in Avro, {default!r} in the model")
        elif not field.is_required():
            default = field.default_factory() if field.default_factory is not None else field.default
            if default is None or default is PydanticUndefined:
                problems.append(f"{name}: required in Avro, the model's default is {default!r}")
    return problems
