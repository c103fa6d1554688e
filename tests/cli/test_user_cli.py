"""``agentiam user disable``: the login ends and the human's grants are revoked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from agentiam.api.context import close_context, open_context
from agentiam.audit.log import stored_event_from_row
from agentiam.audit.tables import audit_events
from agentiam.cli.main import main
from agentiam.config import load_settings
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.revocation.tables import revocations


def _grant(grant_id: str, user_id: str, now: float, **changes: object) -> Grant:
    fields: dict[str, object] = {
        "id": grant_id,
        "user_id": user_id,
        "agent_class": "orchestrator",
        "scopes": ("refunds",),
        "audiences": ("https://api.example",),
        "authorization_details": (),
        "max_depth": 2,
        "expires_at": now + 3600,
        "receipt": "receipt",
        "receipt_hash": grant_id.ljust(43, "r"),
        "created_at": now,
        **changes,
    }
    return Grant(**fields)  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """A data dir where gina has an active, an expired and a revoked grant."""
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    now = ctx.clock()

    def seed(conn: object) -> None:
        users = UserStore(ctx.engine)
        gina = users.add_in(
            conn, login="gina", password_hash=hash_password("gina-password-1"), now=now
        )
        hank = users.add_in(
            conn, login="hank", password_hash=hash_password("hank-password-1"), now=now
        )
        orchestrator = AgentClass(
            name="orchestrator",
            owner=gina.id,
            scopes=frozenset({"refunds"}),
            audiences=frozenset({"https://api.example"}),
            may_spawn=frozenset(),
            max_depth=3,
            default_ttl=240,
            max_ttl=900,
        )
        AgentClassStore(ctx.engine).add_in(conn, orchestrator, now=now)
        grants = GrantStore(ctx.engine)
        grants.insert_in(conn, _grant("grt_active", gina.id, now))
        grants.insert_in(conn, _grant("grt_expired", gina.id, now - 7200,
                                      expires_at=now - 1))  # fmt: skip
        grants.insert_in(conn, _grant("grt_revoked", gina.id, now, revoked_at=now))
        grants.insert_in(conn, _grant("grt_other", hank.id, now))

    try:
        ctx.writer.run_sync(seed)
    finally:
        close_context(ctx)
    return directory


def test_user_disable_revokes_active_grants(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--output", "json", "user", "disable", "gina", "--data-dir", str(data_dir)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["login"] == "gina"
    assert result["disabled"] is True
    assert result["revoked_grants"] == ["grt_active"]

    ctx = open_context(load_settings(environ={}, overrides={"data_dir": data_dir}))
    try:
        with ctx.engine.connect() as conn:
            entries = conn.execute(select(revocations.c.kind, revocations.c.id)).all()
            rows = conn.execute(
                select(audit_events).where(audit_events.c.type == "grant.revoked")
            ).all()
        active = GrantStore(ctx.engine).get("grt_active")
        other = GrantStore(ctx.engine).get("grt_other")
    finally:
        close_context(ctx)
    assert [tuple(entry) for entry in entries] == [("grant", "grt_active")]
    [event] = [stored_event_from_row(row).event for row in rows]
    assert event.grant_id == "grt_active"
    assert event.reason == "user disabled"
    assert event.details["revoked_by"] == "cli"
    assert active is not None and active.revoked_at is not None
    assert other is not None and other.revoked_at is None


def test_user_disable_unknown_login(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "disable", "nobody", "--data-dir", str(data_dir)]) == 1
    assert capsys.readouterr().err == "agentiam: error: User 'nobody' was not found.\n"
