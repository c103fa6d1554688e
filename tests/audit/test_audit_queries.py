"""Audit queries: filters by task subtree, grant, human, agent, time and decision."""

from __future__ import annotations

import asyncio

import pytest

from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.queries import EventQuery, find_events, render_trail, trail

ORCHESTRATOR = "spiffe://agentiam.local/agent/orchestrator/i-1"
WORKER = "spiffe://agentiam.local/agent/refund-worker/i-2"


@pytest.fixture
def populated(audit_log: AuditLog, clock) -> AuditLog:
    events = [
        (100.0, AuditEvent("grant.approved", "allow", "approved", human="alice",
                           grant_id="g-1", actors=[ORCHESTRATOR])),
        (101.0, AuditEvent("task.opened", "none", "opened", human="alice",
                           grant_id="g-1", actors=[ORCHESTRATOR],
                           task_path=["t-root"])),
        (102.0, AuditEvent("token.exchanged", "allow", "issued", human="alice",
                           grant_id="g-1", actors=[WORKER, ORCHESTRATOR],
                           task_path=["t-root", "t-refund"])),
        (103.0, AuditEvent("decision", "deny", "refused", human="alice",
                           grant_id="g-1", actors=[WORKER, ORCHESTRATOR],
                           task_path=["t-root", "t-refund", "t-leaf"])),
        (104.0, AuditEvent("decision", "allow", "granted", human="bob",
                           grant_id="g-2", actors=["spiffe://x/agent/other/i-9"],
                           task_path=["t-other"])),
    ]  # fmt: skip

    async def run() -> None:
        for when, event in events:
            clock.now = when
            await audit_log.record(event)

    asyncio.run(run())
    return audit_log


def _seqs(log: AuditLog, **filters: object) -> list[int]:
    query = EventQuery(**filters)  # type: ignore[arg-type]
    return [stored.seq for stored in find_events(log._engine, query)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({"task": "t-root"}, [1, 2, 3], id="task-subtree"),
        pytest.param({"task": "t-refund"}, [2, 3], id="inner-subtree"),
        pytest.param({"grant_id": "g-2"}, [4], id="grant"),
        pytest.param({"human": "alice"}, [0, 1, 2, 3], id="human"),
        pytest.param({"agent": ORCHESTRATOR}, [0, 1, 2, 3], id="agent-any-position"),
        pytest.param({"agent": WORKER}, [2, 3], id="agent-acting"),
        pytest.param({"since": 101.0, "until": 103.0}, [1, 2], id="time-range"),
        pytest.param({"decision": "deny"}, [3], id="decision"),
        pytest.param({"type": "decision", "human": "alice"}, [3], id="combined"),
        pytest.param({"after_seq": 2, "limit": 1}, [3], id="paging"),
    ],
)
def test_find_events_filters(populated: AuditLog, filters, expected) -> None:
    assert _seqs(populated, **filters) == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        pytest.param({"limit": 0}, "limit 0 is invalid", id="limit-zero"),
        pytest.param({"limit": 1001}, "limit 1001 is invalid", id="limit-large"),
        pytest.param({"decision": "yes"}, "decision 'yes' is invalid", id="decision"),
    ],
)
def test_event_query_rejects(filters, message: str) -> None:
    with pytest.raises(AuditError, match=message):
        EventQuery(**filters)


def test_trail_builds_task_tree(populated: AuditLog) -> None:
    result = trail(populated._engine, "t-root")
    assert [stored.seq for stored in result.approvals] == [0]
    assert [stored.seq for stored in result.root.events] == [1]
    refund = result.root.children["t-refund"]
    assert [stored.seq for stored in refund.events] == [2]
    assert [stored.seq for stored in refund.children["t-leaf"].events] == [3]
    assert result.truncated is False


def test_render_trail_indents_tasks(populated: AuditLog) -> None:
    lines = render_trail(trail(populated._engine, "t-root")).splitlines()
    assert lines[0].startswith("human alice approved grant g-1")
    assert lines[1] == "task t-root"
    assert lines[3] == "`-- task t-refund"
    assert lines[4].startswith("    |-- #2 ")
    assert lines[5] == "    `-- task t-leaf"
    assert lines[6].startswith("        `-- #3 ")
    assert "decision deny refused agent " + WORKER in lines[6]
