"""Tamper detection in the index tables that queries and ``audit trail`` read."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, update
from tests.audit.test_audit_postgres import pg_log  # noqa: F401 (a fixture)

from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.tables import audit_event_actors, audit_event_tasks
from agentiam.audit.verify import verify_log
from agentiam.audit.verify_report import Problem, VerifyReport

ISSUER = "http://127.0.0.1:8800"
WORKER = "spiffe://agentiam.local/agent/worker/i-1"
ORCHESTRATOR = "spiffe://agentiam.local/agent/orchestrator/i-1"


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        "decision",
        "allow",
        "granted",
        actors=[WORKER, ORCHESTRATOR],
        task_path=["t-root", f"t-{number}"],
        details={"number": number},
        time=1_750_000_000.0 + number,
    )


def _fill(log: AuditLog, count: int) -> AuditLog:
    """Append ``count`` events in one unit of work and sign a head over them."""
    with log._engine.begin() as conn:
        log.record_many_in(conn, [_event(number) for number in range(count)])
    log.note_committed(count)
    log.sign_tree_head_sync()
    return log


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_log(request: pytest.FixtureRequest) -> AuditLog:
    """An empty audit log on SQLite or on PostgreSQL."""
    name = "audit_log" if request.param == "sqlite" else "pg_log"
    return request.getfixturevalue(name)


@pytest.fixture
def filled(empty_log: AuditLog) -> AuditLog:
    """A log of 6 events, each with 2 task rows and 2 actor rows, all signed."""
    return _fill(empty_log, 6)


def _verify(log: AuditLog) -> VerifyReport:
    assert log.keyring is not None
    return verify_log(log._engine, log.keyring.lookup, issuer=ISSUER)


def _execute(log: AuditLog, statement) -> None:
    with log._engine.begin() as conn:
        conn.execute(statement)


def test_verify_indexes_accepts_untouched_log(filled: AuditLog) -> None:
    report = _verify(filled)
    assert report.ok, report.problems
    assert report.events == 6


def test_verify_indexes_repeated_task_and_actor(empty_log: AuditLog) -> None:
    event = AuditEvent(
        "decision",
        "allow",
        "granted",
        actors=[WORKER, ORCHESTRATOR, WORKER],
        task_path=["t-a", "t-b", "t-a"],
    )
    with empty_log._engine.begin() as conn:
        empty_log.record_in(conn, event)
    empty_log.note_committed(1)
    empty_log.sign_tree_head_sync()
    report = _verify(empty_log)
    assert report.ok, report.problems


def test_verify_finds_deleted_task_row(filled: AuditLog) -> None:
    table = audit_event_tasks
    _execute(filled, delete(table).where(table.c.seq == 2, table.c.task_id == "t-2"))
    assert _verify(filled).problems == [
        Problem(
            "seq 2",
            "audit_event_tasks has no row for task_id 't-2' "
            "(index row deleted or edited)",
        )
    ]


def test_verify_finds_inserted_task_row(filled: AuditLog) -> None:
    _execute(
        filled, insert(audit_event_tasks).values(seq=3, task_id="t-other", depth=1)
    )
    assert _verify(filled).problems == [
        Problem(
            "seq 3",
            "audit_event_tasks has a row for task_id 't-other' that the event "
            "does not derive (index row inserted or edited)",
        )
    ]


def test_verify_finds_edited_task_depth(filled: AuditLog) -> None:
    table = audit_event_tasks
    _execute(
        filled,
        update(table).where(table.c.seq == 4, table.c.task_id == "t-4").values(depth=7),
    )
    assert _verify(filled).problems == [
        Problem(
            "seq 4",
            "audit_event_tasks row for task_id 't-4' has depth 7, expected 1 "
            "(index row edited)",
        )
    ]


def test_verify_finds_edited_task_id(filled: AuditLog) -> None:
    table = audit_event_tasks
    _execute(
        filled,
        update(table)
        .where(table.c.seq == 1, table.c.task_id == "t-1")
        .values(task_id="t-5"),
    )
    assert _verify(filled).problems == [
        Problem(
            "seq 1",
            "audit_event_tasks has no row for task_id 't-1' "
            "(index row deleted or edited)",
        ),
        Problem(
            "seq 1",
            "audit_event_tasks has a row for task_id 't-5' that the event "
            "does not derive (index row inserted or edited)",
        ),
    ]


def test_verify_finds_deleted_actor_row(filled: AuditLog) -> None:
    table = audit_event_actors
    _execute(filled, delete(table).where(table.c.seq == 0, table.c.actor == WORKER))
    assert _verify(filled).problems == [
        Problem(
            "seq 0",
            f"audit_event_actors has no row for actor {WORKER!r} "
            "(index row deleted or edited)",
        )
    ]


def test_verify_finds_inserted_actor_row(filled: AuditLog) -> None:
    intruder = "spiffe://agentiam.local/agent/intruder/i-1"
    _execute(filled, insert(audit_event_actors).values(seq=5, actor=intruder))
    assert _verify(filled).problems == [
        Problem(
            "seq 5",
            f"audit_event_actors has a row for actor {intruder!r} that the "
            "event does not derive (index row inserted or edited)",
        )
    ]


def test_verify_finds_edited_actor(filled: AuditLog) -> None:
    intruder = "spiffe://agentiam.local/agent/intruder/i-1"
    table = audit_event_actors
    _execute(
        filled,
        update(table)
        .where(table.c.seq == 3, table.c.actor == ORCHESTRATOR)
        .values(actor=intruder),
    )
    assert _verify(filled).problems == [
        Problem(
            "seq 3",
            f"audit_event_actors has no row for actor {ORCHESTRATOR!r} "
            "(index row deleted or edited)",
        ),
        Problem(
            "seq 3",
            f"audit_event_actors has a row for actor {intruder!r} that the "
            "event does not derive (index row inserted or edited)",
        ),
    ]


@pytest.mark.parametrize("seq", [-1, 6, 1000], ids=["negative", "next", "far"])
def test_verify_finds_row_without_event(filled: AuditLog, seq: int) -> None:
    _execute(filled, insert(audit_event_tasks).values(seq=seq, task_id="t-x", depth=0))
    assert _verify(filled).problems == [
        Problem(
            f"seq {seq}",
            "audit_event_tasks has a row for task_id 't-x' that the event "
            "does not derive (index row inserted or edited)",
        )
    ]


def test_verify_counts_index_problems_past_limit(empty_log: AuditLog) -> None:
    log = _fill(empty_log, 105)
    _execute(
        log, delete(audit_event_actors).where(audit_event_actors.c.actor == WORKER)
    )
    problems = _verify(log).problems
    assert len(problems) == 101
    assert problems[0].position == "seq 0"
    assert problems[99].position == "seq 99"
    assert problems[100] == Problem(
        "index tables",
        "5 more index rows differ from their events (only the first 100 are listed)",
    )


def test_verify_finds_index_rows_across_batches(
    filled: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("agentiam.audit.verify._BATCH", 4)
    assert _verify(filled).ok
    tasks = audit_event_tasks
    _execute(filled, delete(tasks).where(tasks.c.seq == 4, tasks.c.task_id == "t-4"))
    _execute(filled, insert(audit_event_actors).values(seq=3, actor="x"))
    assert [str(problem) for problem in _verify(filled).problems] == [
        "seq 3: audit_event_actors has a row for actor 'x' that the event does "
        "not derive (index row inserted or edited)",
        "seq 4: audit_event_tasks has no row for task_id 't-4' "
        "(index row deleted or edited)",
    ]
