"""Audit queries and the decision trail of a task.

``find_events`` filters by task subtree, grant, human, agent instance, time range,
decision and type.  ``trail`` builds the chain of custody of one task: the human
approval of its grant at the top, then each task's events with its sub-tasks
under it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, select
from sqlalchemy.engine import Engine

from agentiam.audit._rfc8785 import loads
from agentiam.audit.chain import b64url
from agentiam.audit.errors import AuditError
from agentiam.audit.events import DECISIONS
from agentiam.audit.log import StoredEvent, stored_event_from_row
from agentiam.audit.tables import audit_event_actors, audit_event_tasks, audit_events

MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100

# Event types that record the human's approval of a grant, shown above the tasks.
APPROVAL_TYPES: Final = frozenset({"grant.approved", "approval.denied"})

# A trail reads at most this many events, so one request has a bounded cost.
MAX_TRAIL_EVENTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters for ``find_events``; ``None`` means no filter on that field.

    ``task`` matches the events of that task and of every task under it.
    ``since`` and ``until`` are Unix seconds, ``until`` exclusive.  ``after_seq``
    pages forward: only events with a larger seq are returned.
    """

    task: str | None = None
    grant_id: str | None = None
    human: str | None = None
    agent: str | None = None
    since: float | None = None
    until: float | None = None
    decision: str | None = None
    type: str | None = None
    after_seq: int | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        """Reject a limit outside 1 to ``MAX_LIMIT`` and an unknown decision."""
        if not 1 <= self.limit <= MAX_LIMIT:
            raise AuditError(
                f"Query limit {self.limit} is invalid; expected 1 to {MAX_LIMIT}."
            )
        if self.decision is not None and self.decision not in DECISIONS:
            raise AuditError(
                f"Query decision {self.decision!r} is invalid; "
                "expected 'allow', 'deny' or 'none'."
            )


def _filtered(query: EventQuery) -> Select[Any]:
    statement = select(audit_events)
    if query.task is not None:
        statement = statement.join(
            audit_event_tasks, audit_event_tasks.c.seq == audit_events.c.seq
        ).where(audit_event_tasks.c.task_id == query.task)
    if query.agent is not None:
        statement = statement.join(
            audit_event_actors, audit_event_actors.c.seq == audit_events.c.seq
        ).where(audit_event_actors.c.actor == query.agent)

    columns = {
        "grant_id": audit_events.c.grant_id,
        "human": audit_events.c.human,
        "decision": audit_events.c.decision,
        "type": audit_events.c.type,
    }
    for name, column in columns.items():
        value = getattr(query, name)
        if value is not None:
            statement = statement.where(column == value)

    if query.since is not None:
        statement = statement.where(audit_events.c.time >= query.since)
    if query.until is not None:
        statement = statement.where(audit_events.c.time < query.until)
    if query.after_seq is not None:
        statement = statement.where(audit_events.c.seq > query.after_seq)
    return statement


def find_events(engine: Engine, query: EventQuery) -> list[StoredEvent]:
    """Return the committed events matching ``query``, in seq order."""
    statement = _filtered(query).order_by(audit_events.c.seq).limit(query.limit)
    with engine.connect() as conn:
        rows = conn.execute(statement).all()
    return [stored_event_from_row(row) for row in rows]


def event_to_json(stored: StoredEvent) -> dict[str, Any]:
    """Return the JSON shape of a stored event used by the API and the export.

    ``event`` is decoded from the stored canonical bytes, so its members keep
    their canonical order and numbers their canonical form.  Encoded again
    without sorting or escaping non-ASCII (as the export does), it gives back
    those bytes for every event whose numbers Python writes as RFC 8785 does,
    and the export verifier can hash the line's event bytes unchanged.
    """
    return {
        "seq": stored.seq,
        "leaf_hash": b64url(stored.leaf_hash),
        "chain_hash": b64url(stored.chain_hash),
        "event": loads(stored.canonical),
    }


@dataclass(slots=True)
class TrailNode:
    """One task in a trail: its own events in order, then its sub-tasks."""

    task_id: str
    events: list[StoredEvent] = field(default_factory=list)
    children: dict[str, TrailNode] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of this node and everything under it."""
        return {
            "task_id": self.task_id,
            "events": [event_to_json(stored) for stored in self.events],
            "children": [child.to_dict() for child in self.children.values()],
        }


@dataclass(slots=True)
class Trail:
    """The decision chain of a task: approvals on top, then the task tree."""

    task_id: str
    approvals: list[StoredEvent]
    root: TrailNode
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of the trail."""
        return {
            "task_id": self.task_id,
            "approvals": [event_to_json(stored) for stored in self.approvals],
            "tasks": self.root.to_dict(),
            "truncated": self.truncated,
        }


def _subtree_events(engine: Engine, task_id: str) -> Iterator[StoredEvent]:
    after = -1
    read = 0
    while read < MAX_TRAIL_EVENTS:
        page = find_events(
            engine, EventQuery(task=task_id, after_seq=after, limit=MAX_LIMIT)
        )
        if not page:
            return
        yield from page
        read += len(page)
        after = page[-1].seq


def trail(engine: Engine, task_id: str) -> Trail:
    """Build the decision trail of ``task_id`` and every task under it.

    The approvals are the ``grant.approved`` (or ``approval.denied``) events of
    every grant that the subtree's events name.  Each event is placed under the
    task it acted in, following its ``task_path`` from ``task_id`` down.
    """
    root = TrailNode(task_id)
    grants: dict[str, None] = {}
    count = 0
    for stored in _subtree_events(engine, task_id):
        count += 1
        _place(root, task_id, stored)
        if stored.event.grant_id is not None:
            grants.setdefault(stored.event.grant_id)

    approvals: list[StoredEvent] = []
    for grant_id in grants:
        for approval_type in sorted(APPROVAL_TYPES):
            approvals.extend(
                find_events(engine, EventQuery(grant_id=grant_id, type=approval_type))
            )
    approvals.sort(key=lambda stored: stored.seq)
    return Trail(task_id, approvals, root, truncated=count >= MAX_TRAIL_EVENTS)


def _place(root: TrailNode, task_id: str, stored: StoredEvent) -> None:
    path = list(stored.event.task_path)
    below = path[path.index(task_id) + 1 :] if task_id in path else []
    node = root
    for child_id in below:
        node = node.children.setdefault(child_id, TrailNode(child_id))
    node.events.append(stored)


def _observed_order(stored: StoredEvent) -> tuple[float, int]:
    # Decisions reach the log in batches from resource servers, so neither the
    # sequence number nor the logged time is the order in which they happened; the
    # resource server's own time (``observed_at``) is.
    observed = stored.event.details.get("observed_at")
    if isinstance(observed, int | float):
        return float(observed), stored.seq
    return float(stored.event.time or 0), stored.seq


def _describe(stored: StoredEvent, *, with_actor: bool = True) -> str:
    event = stored.event
    when = datetime.fromtimestamp(_observed_order(stored)[0], tz=UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    parts = [f"#{stored.seq}", when, event.type, event.decision]
    if event.outcome:
        parts.append(event.outcome)
    if with_actor and event.actors:
        parts.append(f"agent {event.actors[0]}")
    target = event.request.get("path") or event.request.get("endpoint")
    if target:
        method = event.request.get("method")
        parts.append(f"{method} {target}" if method else str(target))
    if event.reason:
        parts.append(f"({event.reason})")
    return " ".join(parts)


def render_trail(result: Trail) -> str:
    """Render a trail as an indented, readable tree of text lines."""
    lines: list[str] = []
    for stored in result.approvals:
        event = stored.event
        agent = f" for {event.actors[0]}" if event.actors else ""
        lines.append(
            f"human {event.human} {event.outcome or event.type} grant "
            f"{event.grant_id}{agent} (receipt {event.receipt_hash}) "
            f"[{_describe(stored, with_actor=False)}]"
        )
    if not result.approvals:
        lines.append("no approval event found for this task's grants")
    _render_node(result.root, "", lines)
    if result.truncated:
        lines.append(f"(only the first {MAX_TRAIL_EVENTS} events are shown)")
    return "\n".join(lines)


def _render_node(node: TrailNode, indent: str, lines: list[str]) -> None:
    lines.append(f"{indent}task {node.task_id}")
    events = sorted(node.events, key=_observed_order)
    entries: list[StoredEvent | TrailNode] = [*events, *node.children.values()]
    for index, entry in enumerate(entries):
        last = index == len(entries) - 1
        branch = "`-- " if last else "|-- "
        if isinstance(entry, TrailNode):
            child_lines: list[str] = []
            _render_node(entry, "", child_lines)
            lines.append(indent + branch + child_lines[0])
            further = indent + ("    " if last else "|   ")
            lines.extend(further + line for line in child_lines[1:])
        else:
            lines.append(indent + branch + _describe(entry))
