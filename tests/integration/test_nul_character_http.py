"""Requests that carry U+0000 in a value the server looks up or stores.

PostgreSQL text cannot contain U+0000, so on PostgreSQL each request is rejected
with 400 ``invalid_request`` before the statement reaches the driver.  SQLite
compares such strings, so there the lookups find nothing.
"""

from __future__ import annotations

import httpx
import pytest
from test_exchange_http import Seeded, seeded

__all__ = ["seeded"]

NUL_VALUE = "a\x00b"
NUL_IN_PATH = "a%00b"


def _send(seeded: Seeded, target: str) -> httpx.Response:
    base = seeded.base_url
    if target == "client":
        return httpx.post(
            f"{base}/introspect", data={"token": "x"}, auth=(NUL_VALUE, "secret")
        )
    admin = {"Authorization": f"Bearer {seeded.admin_session()}"}
    if target == "path":
        return httpx.get(f"{base}/v1/tasks/{NUL_IN_PATH}", headers=admin)
    if target == "query":
        return httpx.get(
            f"{base}/v1/audit/events", params={"agent": NUL_VALUE}, headers=admin
        )
    return httpx.post(
        f"{base}/v1/join-tokens", json={"agent_class": NUL_VALUE}, headers=admin
    )


@pytest.mark.parametrize(
    ("target", "sqlite_status", "sqlite_error"),
    [
        ("path", 404, "not_found"),
        ("query", 200, None),
        ("json", 404, "not_found"),
        ("client", 401, "invalid_client"),
    ],
)
def test_nul_character_is_not_a_server_error(
    seeded: Seeded,
    live_database: str | None,
    target: str,
    sqlite_status: int,
    sqlite_error: str | None,
) -> None:
    response = _send(seeded, target)

    if live_database is None:
        assert response.status_code == sqlite_status, response.text
        assert response.json().get("error") == sqlite_error
    else:
        assert response.status_code == 400, response.text
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "The request is invalid.",
        }
