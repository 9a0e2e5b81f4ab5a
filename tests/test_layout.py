"""The README's layout section is the map a newcomer reads first: it must match the tree."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section.split("```")[1].splitlines()


def test_every_streams_package_is_in_the_readme_layout_and_nothing_else():
    named = {m.group(1) for line in _layout_block() if (m := re.match(r"^  ([a-z_]+)/\s", line))}
    named.discard("stack")  # ops/stack/, listed under ops/
    on_disk = {p.parent.name for p in (ROOT / "streams").glob("*/__init__.py")}
    assert named == on_disk


def test_top_level_folders_in_the_readme_layout_exist():
    tops = {m.group(1) for line in _layout_block() if (m := re.match(r"^([a-z_]+)/", line))}
    assert tops >= {"schemas", "sql", "risk_core", "streams", "ops", "tests", "benchmarks"}
    for top in tops:
        assert (ROOT / top).is_dir(), top


def test_agent_modules_named_in_the_readme_agent_table_exist():
    text = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"`(streams/[a-z_/]+\.py)`", text))
    assert paths, "the agent table names no module"
    for path in paths:
        assert (ROOT / path).is_file(), path


def test_tests_mirror_the_packages():
    for package in (p.parent for p in (ROOT / "streams").glob("*/__init__.py")):
        assert (ROOT / "tests" / "streams" / package.name).is_dir(), f"tests/streams/{package.name}/ is missing"
