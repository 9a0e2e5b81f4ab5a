"""The `settings` fixture: a stack of our own on free ports, nothing started."""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings
from tests.ops.stack.helpers import free_ports, stack_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return stack_settings(tmp_path / "run", free_ports(), cache_dir=tmp_path / "cache")
