"""Fixtures of the approvals tests; the helpers live in ``ciba_world``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ciba_world import World, open_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(tmp_path)
