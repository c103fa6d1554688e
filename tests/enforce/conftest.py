"""Fixtures of the enforcement tests."""

from __future__ import annotations

from typing import Any

import pytest
from enforce_fakes import World, starlette_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world() -> Any:
    world = World(starlette_app())
    yield world
    await world.close()
