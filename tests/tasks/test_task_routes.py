"""``POST /v1/tasks/{id}/close`` in-process, as the grant's human."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from test_task_cli import KEK, _seed

from agentiam.api.app import create_app
from agentiam.api.context import close_context, open_context
from agentiam.config import load_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def seeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, str, dict[str, str]]]:
    """A client of the app, the root task id and alice's session header."""
    monkeypatch.setenv("AGENTIAM_KEK", KEK)
    data = tmp_path / "data"
    root_id, _child_id = _seed(data)
    settings = load_settings(environ={}, overrides={"data_dir": data})
    ctx = open_context(settings, environ={"AGENTIAM_KEK": KEK})
    transport = httpx.ASGITransport(app=create_app(ctx))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url=ctx.settings.issuer
        ) as client:
            login = await client.post(
                "/v1/sessions", json={"login": "alice", "password": "pw"}
            )
            assert login.status_code == 201, login.text
            token = login.json()["session_token"]
            yield client, root_id, {"Authorization": f"Bearer {token}"}
    finally:
        close_context(ctx)


async def test_close_task_twice_http(
    seeded: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, root_id, headers = seeded
    path = f"/v1/tasks/{root_id}/close"

    first = await client.post(path, headers=headers)
    second = await client.post(path, headers=headers)

    assert first.status_code == 200, first.text
    assert first.json()["already_closed"] is False
    assert first.json()["status"] == "closed"
    assert second.status_code == 200, second.text
    assert second.json() == {
        "id": root_id,
        "closed": [],
        "already_closed": True,
        "status": "closed",
        "closed_at": first.json()["closed_at"],
        "closed_by": first.json()["closed_by"],
    }


async def test_close_unknown_task_http(
    seeded: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, _root_id, headers = seeded

    response = await client.post("/v1/tasks/tsk_nope/close", headers=headers)

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": "Task 'tsk_nope' was not found.",
    }
