"""News files for `algo replay --news PATH`: CSV or JSON lines -> NewsItem records, oldest first.

Columns (CSV header) or keys (one JSON object per line): published_at, symbols, headline, summary,
source, url. published_at (ISO 8601; without a zone it is UTC), headline and source are required;
summary (-> body), symbols (a space/comma separated string, or in JSON a list) and url may be empty
or left out. Symbols are upper-cased as declared: resolving them against the symbol table is the
analyst's job. The format follows the extension (.csv; .jsonl, .ndjson, .json) or, for any other
name, the first character ('{' = JSON lines).

Each item's id is derived from (published_at, source, headline) (streams.bus.ids), so replaying the
same file twice publishes the same ids and the compacted topic and the vault keep one copy.
"""
from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from streams.bus.ids import derived_id
from streams.errors import DataError
from streams.resources import read_utf8

COLUMNS = ("published_at", "symbols", "headline", "summary", "source", "url")
REQUIRED = ("published_at", "headline", "source")
CSV_SUFFIXES = {".csv"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_SYMBOL_SEPARATORS = re.compile(r"[\s,]+")


def news_id(published_at: datetime, source: str, headline: str) -> str:
    """The id of a news item read from a file: the same item gets the same id in every replay."""
    return derived_id("news", published_at, source, headline)


def parse_time(text: str) -> datetime:
    """ISO 8601 (a date alone is midnight) -> an aware UTC datetime; naive times are UTC."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def split_symbols(value: str | list | None) -> list[str]:
    """'aapl, MSFT ibm' or ['aapl', 'MSFT'] -> ['AAPL', 'MSFT', 'IBM'] (order kept, repeats dropped)."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = _SYMBOL_SEPARATORS.split(value)
    else:
        parts = [p for item in value for p in _SYMBOL_SEPARATORS.split(item)]
    return list(dict.fromkeys(p.upper() for p in parts if p))


def load_news(path: str | Path) -> list[dict]:
    """The file's news items as NewsItem records sorted by time (file order among equal times)."""
    path = Path(path)
    text = read_utf8(path, DataError, f"{path}: no such file")
    rows = _json_rows(path, text) if _is_json(path, text) else _csv_rows(path, text)
    items: list[dict] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        item = _record(path, line, row)
        if item["id"] in first_line:
            raise DataError(f"{path}, line {line}: repeats line {first_line[item['id']]} (same published_at, "
                            "source and headline, so the same news id)")
        first_line[item["id"]] = line
        items.append(item)
    if not items:
        raise DataError(f"{path}: no news items (expected columns {','.join(COLUMNS)})")
    items.sort(key=lambda item: item["ts"])  # stable: file order among equal times
    return items


def _is_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES or suffix in JSON_SUFFIXES:
        return suffix in JSON_SUFFIXES
    return text.lstrip().startswith("{")


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise DataError(f"{path}, line 1: not a readable CSV header ({error})") from None
    names = [name.strip().lower() for name in header]
    _check_fields(path, 1, names, "column")
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"{path}, line {start}: not readable CSV ({error})") from None
        if not values or all(not v.strip() for v in values):
            continue  # a blank line
        if len(values) != len(names):
            raise DataError(f"{path}, line {start}: {len(values)} fields where the header has {len(names)}")
        yield start, dict(zip(names, values))


def _json_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {line}: not JSON ({error.msg} at column {error.colno}); "
                            "expected JSON lines, one object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {line}: a JSON {type(row).__name__} where JSON lines need one object "
                            "per line")
        _check_fields(path, line, list(row), "key")
        yield line, row


def _check_fields(path: Path, line: int, names: list[str], kind: str) -> None:
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise DataError(f"{path}, line {line}: unknown {kind}(s) {', '.join(map(repr, unknown))}; "
                        f"the {kind}s are {','.join(COLUMNS)}")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise DataError(f"{path}, line {line}: missing {kind}(s) {', '.join(missing)} "
                        f"(required: {', '.join(REQUIRED)})")


def _text(path: Path, line: int, row: dict, name: str, required: bool) -> str:
    value = row.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise DataError(f"{path}, line {line}: {name} must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise DataError(f"{path}, line {line}: empty {name}")
    return value


def _record(path: Path, line: int, row: dict[str, Any]) -> dict:
    published = _text(path, line, row, "published_at", True)
    try:
        ts = parse_time(published)
    except ValueError:
        raise DataError(f"{path}, line {line}: bad published_at {published!r} (ISO 8601 expected, "
                        "e.g. 2004-01-14 or 2004-01-14T21:05:00Z)") from None
    headline = _text(path, line, row, "headline", True)
    source = _text(path, line, row, "source", True)
    symbols = row.get("symbols")
    if isinstance(symbols, list):
        if not all(isinstance(s, str) for s in symbols):
            raise DataError(f"{path}, line {line}: symbols must be strings")
    elif symbols is not None and not isinstance(symbols, str):
        raise DataError(f"{path}, line {line}: symbols must be a string or a list of strings, "
                        f"not {type(symbols).__name__}")
    return {
        "id": news_id(ts, source, headline),
        "ts": ts,
        "source": source,
        "headline": headline,
        "body": _text(path, line, row, "summary", False),
        "symbols": split_symbols(symbols),
        "url": _text(path, line, row, "url", False) or None,
    }
