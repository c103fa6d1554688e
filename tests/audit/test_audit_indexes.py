"""Every filter of ``find_events`` has an index that SQLite's planner uses.

``human`` and ``grant_id`` have partial indexes (``IS NOT NULL``), which serve a
query only because it compares the column with a value.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from agentiam.audit.queries import EventQuery, _filtered
from agentiam.audit.tables import audit_events
from agentiam.storage.engine import create_engine
from agentiam.storage.migrate import upgrade


@pytest.fixture
def migrated(tmp_path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _plan(engine: Engine, query: EventQuery) -> str:
    statement = _filtered(query).order_by(audit_events.c.seq).limit(query.limit)
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        pytest.param(EventQuery(human="alice"), "ix_audit_events_human", id="human"),
        pytest.param(
            EventQuery(grant_id="g-1"), "ix_audit_events_grant_id", id="grant"
        ),
        pytest.param(
            EventQuery(grant_id="g-1", type="grant.approved"),
            "ix_audit_events_grant_id",
            id="grant-and-type",
        ),
        pytest.param(
            EventQuery(since=1.0, until=2.0), "ix_audit_events_time", id="time"
        ),
        pytest.param(EventQuery(task="t-1"), "ix_audit_event_tasks_task_id", id="task"),
        pytest.param(
            EventQuery(agent="spiffe://x/agent/a/i-1"),
            "ix_audit_event_actors_actor",
            id="agent",
        ),
    ],
)
def test_query_uses_index(migrated: Engine, query: EventQuery, index: str) -> None:
    assert f"USING INDEX {index} " in _plan(migrated, query)
