import pytest

from streams.errors import MigrationError
from streams.vault.migrations import Migration, discover, pending


def test_discovers_the_shipped_migrations_in_order():
    migrations = discover()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].name == "vault" and "CREATE TABLE market_data" in migrations[0].sql


def test_bad_names_and_duplicate_versions_are_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="NNN_description"):
        discover(tmp_path)
    (tmp_path / "1_x.sql").unlink()
    (tmp_path / "001_a.sql").write_text("select 1")
    (tmp_path / "0001_b.sql").write_text("select 2")
    with pytest.raises(MigrationError, match="used twice"):
        discover(tmp_path)


def test_pending_skips_applied_and_refuses_edited_ones():
    a, b = Migration(1, "a", "select 1"), Migration(2, "b", "select 2")
    assert pending([a, b], {}) == [a, b]
    assert pending([a, b], {1: a.checksum}) == [b]
    assert pending([a, b], {1: a.checksum, 2: b.checksum}) == []
    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending([a, b], {1: "0" * 64})
    with pytest.raises(MigrationError, match="not in sql/"):
        pending([a], {1: a.checksum, 2: b.checksum})
