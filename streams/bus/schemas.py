"""The .avsc files under schemas/avro are the single source of truth for every message."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import fastavro

from streams.errors import CodecError
from streams.resources import schema_dir

SCHEMA_DIR = schema_dir()


def schema_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.avsc"


@lru_cache(maxsize=None)
def schema_str(name: str) -> str:
    path = schema_path(name)
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc")))
        raise CodecError(f"no schema named {name!r} in {SCHEMA_DIR} (known: {known})")
    return path.read_text().strip()


@lru_cache(maxsize=None)
def parsed_schema(name: str) -> dict:
    """fastavro's parsed form, for local validation without a registry."""
    return fastavro.parse_schema(json.loads(schema_str(name)))


def all_schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))


def validation_errors(name: str, record: dict) -> list[str]:
    """Why `record` does not fit schema `name`, one message per bad field; empty when it fits."""
    from fastavro.validation import ValidationError, validate

    try:
        validate(record, parsed_schema(name), raise_errors=True)
    except ValidationError as error:
        return [str(message) for message in error.errors]
    return []
