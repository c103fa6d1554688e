"""The whole demo, run with the server, the CLI and the audit log on PostgreSQL.

The demo passes its environment to every ``agentiam`` process it starts, so
``AGENTIAM_DATABASE_URL`` moves all of them to a fresh schema of the PostgreSQL
test database.  The schema's tables are read afterwards, so a run that fell back
to SQLite fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from tests.storage.conftest import postgres_schema

from agentiam.audit.tables import audit_events, tree_heads
from agentiam.storage.engine import create_engine
from agentiam.tasks.tables import tasks

pytestmark = pytest.mark.postgres

DEMO_TIMEOUT_S = 240


@pytest.fixture
def database_url() -> Iterator[str]:
    """The URL of a fresh schema in the test database, dropped afterwards."""
    with postgres_schema("agentiam_demo") as url:
        yield url


def _worker_denials(url: str) -> list[tuple[str, int, str]]:
    """Return the path, status and reason of each denial of a request with actors."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                select(audit_events.c.canonical)
                .where(audit_events.c.decision == "deny")
                .order_by(audit_events.c.seq)
            )
            events = [json.loads(row[0]) for row in conn.execute(query)]
    finally:
        engine.dispose()
    return [
        (event["request"]["path"], event["request"]["status"], event["reason"])
        for event in events
        if event["actors"]
    ]


def _closed_task(output: str) -> str:
    """Return the id of the task that the demo's orchestrator closed."""
    match = re.search(r"Orchestrator closed task (tsk_\S+)", output)
    assert match is not None, output
    return match.group(1)


def _count(url: str, table, *where) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(table).where(*where)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_demo_runs_on_postgres(database_url: str) -> None:
    url = database_url
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AGENTIAM_")
    }
    env["AGENTIAM_DATABASE_URL"] = url

    result = subprocess.run(
        [sys.executable, "-m", "agentiam.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL" not in result.stdout
    assert result.stdout.rstrip().endswith("Every step behaved as expected.")
    assert "Verified the audit log  (audit log verified: " in result.stdout
    assert _count(url, audit_events) >= 15
    assert _worker_denials(url) == [
        ("/refunds", 403, "Amount '80.00' EUR exceeds the 'refund' limit '50.00' EUR."),
        ("/crm/export", 403, "missing scope crm"),
        ("/refunds", 401, f"revoked id {_closed_task(result.stdout)}"),
    ]
    assert _count(url, tree_heads) >= 1
    assert _count(url, tasks) == 2
