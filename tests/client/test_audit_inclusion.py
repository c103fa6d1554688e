"""The SDK's inclusion check against the real server's signed log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from agentiam.client.audit import AuditProofError, verify_event_inclusion

TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"
PASSWORD = "auditor password 1234"


@pytest.fixture
def auditor(live_server: str, live_server_database_args: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIAM_")}
    env.update(AGENTIAM_KEK=TEST_KEK, AGENTIAM_PASSWORD=PASSWORD)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agentiam.cli.main",
            "user",
            "add",
            "auditor",
            "--admin",
            *live_server_database_args,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    login = httpx.post(
        f"{live_server}/v1/sessions", json={"login": "auditor", "password": PASSWORD}
    )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['session_token']}"}


def signed_events(server: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    httpx.post(f"{server}/v1/audit/tree-heads", headers=headers).raise_for_status()
    found = httpx.get(f"{server}/v1/audit/events", headers=headers)
    found.raise_for_status()
    events: list[dict[str, Any]] = found.json()["events"]
    return events


def check(server: str, seq: int, event: dict[str, Any], headers: dict[str, str]) -> Any:
    async def run() -> Any:
        async with httpx.AsyncClient(timeout=10.0) as http:
            return await verify_event_inclusion(
                http, server, seq, event, headers=headers
            )

    return asyncio.run(run())


def test_inclusion_verified(live_server: str, auditor: dict[str, str]) -> None:
    events = signed_events(live_server, auditor)
    last = events[-1]

    result = check(live_server, last["seq"], last["event"], auditor)

    assert result.seq == last["seq"]
    assert result.tree_size >= last["seq"] + 1


def test_inclusion_edited_event_fails(
    live_server: str, auditor: dict[str, str]
) -> None:
    last = signed_events(live_server, auditor)[-1]
    edited = dict(last["event"], outcome="edited")

    with pytest.raises(AuditProofError, match="the proof does not lead to the signed"):
        check(live_server, last["seq"], edited, auditor)


def test_inclusion_beyond_head_fails(live_server: str, auditor: dict[str, str]) -> None:
    last = signed_events(live_server, auditor)[-1]

    with pytest.raises(AuditProofError, match="not covered by the latest signed"):
        check(live_server, last["seq"] + 1000, last["event"], auditor)
