"""Where the files that ship with the code are: the Avro schemas, the SQL migrations, the dashboard.

In a wheel they are package data under streams/_data/ (setup.py copies them there) and are found
through importlib.resources; in a checkout (an editable install) they are the repository's own
schemas/ and sql/ folders, the single source of truth.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _data_dir(*parts: str) -> Path:
    packaged = resources.files("streams").joinpath("_data", *parts)
    if packaged.is_dir():
        return Path(str(packaged))
    return _CHECKOUT.joinpath(*parts)


def schema_dir() -> Path:
    """The folder of .avsc files, one per event type."""
    return _data_dir("schemas", "avro")


def sql_dir() -> Path:
    """The folder of ordered migrations (NNN_name.sql)."""
    return _data_dir("sql")


def static_dir() -> Path:
    """The dashboard's static files."""
    return Path(str(resources.files("streams.bridge").joinpath("static")))


def read_utf8(path: Path, error: type[Exception], missing: str) -> str:
    """A user's text file (a BOM is dropped); `error` with one line when it is missing or not UTF-8."""
    if not path.is_file():
        raise error(missing)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text ({problem.reason} at byte {problem.start})") from None
