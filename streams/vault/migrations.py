"""Ordered SQL migrations from sql/, applied once each and recorded in schema_migrations.

Files are named NNN_description.sql and applied in version order, each in its own transaction.
An applied file whose contents changed since is refused: write a new migration instead. The one
exception is REWORDED: earlier checksums of files whose later edits touched comments only (the
test suite rebuilds each earlier text and checks its checksum), accepted as applied and
re-recorded under the file's current checksum.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import psycopg

from streams.errors import MigrationError
from streams.resources import sql_dir

SQL_DIR = sql_dir()
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x616C676F  # 'algo': one runner at a time per database

# version -> checksums of earlier texts that differ from the file only in comments
REWORDED: Mapping[int, frozenset[str]] = {
    # 001: its embedding comment cited a design page outside the repository
    1: frozenset({"6a9d46a73e4bd5de4ccc8f0d7b7a5e688b40160c7e5544f51aeb5083290f993a"}),
}

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = SQL_DIR) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_description.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


def pending(migrations: Iterable[Migration], applied: Mapping[int, str]) -> list[Migration]:
    """The migrations still to apply, after checking the applied ones were not edited."""
    on_disk = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        if version not in on_disk:
            raise MigrationError(f"database has migration {version} that is not in sql/: is this checkout older?")
        if on_disk[version].checksum != checksum and checksum not in REWORDED.get(version, ()):
            raise MigrationError(
                f"migration {version}_{on_disk[version].name}.sql changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )
    return [m for v, m in sorted(on_disk.items()) if v not in applied]


def migrate(database_url: str, directory: Path = SQL_DIR) -> list[Migration]:
    """Apply what is pending; returns what was applied (empty when up to date)."""
    migrations = discover(directory)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                conn.execute(_BOOKKEEPING)
                applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
                todo = pending(migrations, applied)
                for migration in migrations:
                    if applied.get(migration.version, migration.checksum) != migration.checksum:  # reworded
                        conn.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                                     (migration.checksum, migration.version))
                for migration in todo:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                return todo
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    except psycopg.Error as error:
        raise MigrationError(f"migration failed: {error}") from error
