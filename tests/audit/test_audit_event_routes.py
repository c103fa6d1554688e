"""Integer path and query parameters of the /v1/audit/ routes at and beyond BIGINT.

A seq is stored in a BIGINT column, so a value above 2**63 - 1 never reaches the
database.  The path parameter returns 404 as for a seq that does not exist, and
query parameters are rejected as invalid, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentiam.api.app import create_app
from agentiam.audit.events import AuditEvent
from agentiam.audit.routes import MAX_SEQ
from agentiam.identity.issuance import issue_session
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore

UNKNOWN_PATH = "The requested resource was not found."


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, asgi_client) -> dict[str, Any]:
    """An app with one audit event and an administrator session, on each database."""
    ctx = request.getfixturevalue("ctx" if request.param == "sqlite" else "pg_ctx")
    now = ctx.clock()

    def setup(conn):
        return UserStore(ctx.engine).add_in(
            conn, login="root", password_hash=hash_password("correct horse"),
            now=now, admin=True,
        )  # fmt: skip

    admin = ctx.writer.run_sync(setup)
    session = issue_session(ctx, user_id=admin.id, admin=True, now=now)
    seq = ctx.writer.run_sync(
        lambda conn: ctx.audit.record_in(
            conn, AuditEvent("session.created", "allow", "issued", human="root")
        )
    )
    ctx.audit.note_committed(seq + 1)
    return {
        "client": asgi_client(create_app(ctx)),
        "admin": {"Authorization": f"Bearer {session.token}"},
        "seq": seq,
    }


def _get_event(world: dict[str, Any], seq: str) -> Any:
    return world["client"].get(f"/v1/audit/events/{seq}", headers=world["admin"])


def test_max_seq_is_bigint_max() -> None:
    assert MAX_SEQ == 9223372036854775807


def test_event_missing_seq_not_found(world) -> None:
    response = _get_event(world, str(world["seq"] + 1))

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": f"Audit event '{world['seq'] + 1}' was not found.",
    }


@pytest.mark.parametrize(
    ("seq", "shown"),
    [
        pytest.param(str(2**63 - 1), "'9223372036854775807'", id="bigint-max"),
        pytest.param(str(2**63), "'9223372036854775808'", id="bigint-max-plus-1"),
        pytest.param("9" * 20, "'99999999999999999999'", id="20-digits"),
        pytest.param(
            "0" * 30 + str(2**63), "'9223372036854775808'", id="leading-zeros"
        ),
        pytest.param("1" + "0" * 40, "'10000000000000000000...' (41 digits)",
                     id="41-digits"),
        pytest.param("9" * 5000, "'99999999999999999999...' (5000 digits)",
                     id="5000-digits"),
    ],
)  # fmt: skip
def test_event_seq_out_of_range_not_found(world, seq: str, shown: str) -> None:
    response = _get_event(world, seq)

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": f"Audit event {shown} was not found.",
    }


def test_event_seq_leading_zeros(world) -> None:
    response = _get_event(world, "0" * 25 + str(world["seq"]))

    assert response.status_code == 200, response.text
    assert response.json()["seq"] == world["seq"]


@pytest.mark.parametrize(
    "seq",
    ["abc", "-1", "1.0", "%C2%B2", "%EF%BC%91"],
    ids=["letters", "negative", "decimal", "superscript-2", "fullwidth-1"],
)
def test_event_seq_not_digits_unknown_path(world, seq: str) -> None:
    response = _get_event(world, seq)

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "error_description": UNKNOWN_PATH,
    }


def test_event_out_of_range_requires_admin(world) -> None:
    response = world["client"].get(f"/v1/audit/events/{2**63}")

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/v1/audit/events", {"after": ""}, "after"),
        ("/v1/audit/events", {"limit": ""}, "limit"),
        ("/v1/audit/proofs/inclusion", {"seq": "", "tree_size": "1"}, "seq"),
        ("/v1/audit/proofs/inclusion", {"seq": "0", "tree_size": ""}, "tree_size"),
        ("/v1/audit/proofs/consistency", {"first": "", "second": "1"}, "first"),
        ("/v1/audit/proofs/consistency", {"first": "1", "second": ""}, "second"),
    ],
    ids=["after", "limit", "seq", "tree_size", "first", "second"],
)
@pytest.mark.parametrize(
    "value",
    [str(2**63), "9" * 19, "9" * 5000, "\u00b2", "\uff11"],
    ids=[
        "bigint-max-plus-1",
        "19-digits",
        "5000-digits",
        "superscript-2",
        "fullwidth-1",
    ],
)
def test_int_params_out_of_range_rejected(world, path, params, name, value) -> None:
    query = {key: value if key == name else other for key, other in params.items()}

    response = world["client"].get(path, params=query, headers=world["admin"])

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": (
            f"The request is invalid. Parameter '{name}' is '{value[:32]}'; "
            "expected a non-negative integer."
        ),
    }
