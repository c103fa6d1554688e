"""``agentiam grant revoke`` run beside a live server reaches it at its next refresh.

The CLI writes the revocation into the database directly; the server reads rows
that other processes wrote every ``revocation_refresh_ms``.
"""

from __future__ import annotations

import time

import pytest
from test_exchange_http import TEST_KEK, Seeded, seeded

from agentiam.cli.main import main

__all__ = ["seeded"]

REFRESH_MS = 100
DEADLINE_SECONDS = 2.0


@pytest.fixture
def live_server_env() -> dict[str, str]:
    return {"AGENTIAM_REVOCATION_REFRESH_MS": str(REFRESH_MS)}


def test_cli_grant_revoke_reaches_running_server(
    seeded: Seeded,
    live_server_database_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, svid = seeded.worker()
    issued = seeded.exchange(seeded.root_token(), key, svid, scope="refunds")
    assert issued.status_code == 200, issued.text
    child = issued.json()["access_token"]
    assert seeded.introspect(child)["active"] is True
    monkeypatch.setenv("AGENTIAM_KEK", TEST_KEK)

    code = main(["grant", "revoke", seeded.grant.id, *live_server_database_args])

    assert code == 0, capsys.readouterr().err
    deadline = time.monotonic() + DEADLINE_SECONDS
    while seeded.introspect(child)["active"] and time.monotonic() < deadline:
        time.sleep(REFRESH_MS / 1000 / 2)
    assert seeded.introspect(child) == {"active": False}
    refused = seeded.exchange(seeded.root_token(), key, svid, scope="refunds")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
