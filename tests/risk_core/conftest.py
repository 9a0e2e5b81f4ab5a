from __future__ import annotations

import pytest

from .helpers import random_walk


@pytest.fixture
def walk():
    return random_walk
