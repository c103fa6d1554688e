"""The task store: opens, reads, closes and expires tasks in the task tree.

Closing a task closes its whole subtree and puts one ``task`` entry into the
revocation set. Tokens carry their task path, so that one entry kills every token and
sub-agent identity of the subtree. A task past its ``expires_at`` counts as expired
wherever it is read, and ``sweep_in`` marks such tasks and revokes them.
"""

from __future__ import annotations

import json
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, insert, select, update

from agentiam.revocation import RevocationSet
from agentiam.tasks.errors import TaskBoundsError, TaskNotOpenError
from agentiam.tasks.tables import tasks

OPEN = "open"
CLOSED = "closed"
EXPIRED = "expired"

MAX_PURPOSE_LENGTH = 512

# Task rows are immutable except for their status, which the revocation set and the
# clock decide on read, so cached rows stay correct until close_in drops them.
_CACHE_SIZE = 65536

# Statements built once, so SQLAlchemy compiles each of them once and not per task.
_INSERT_TASK = insert(tasks)
_SELECT_TASK = select(tasks).where(tasks.c.id == bindparam("task_id"))


@dataclass(frozen=True, slots=True)
class Task:
    """One task of the tree."""

    id: str
    grant_id: str
    parent_id: str | None
    path: tuple[str, ...]
    purpose: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    opened_by: str
    opened_at: float
    status: str
    expires_at: float
    closed_at: float | None
    closed_by: str | None

    def is_open(self, now: float) -> bool:
        """Return whether the task is open and not past its expiry."""
        return self.status == OPEN and now < self.expires_at

    def status_at(self, now: float) -> str:
        """Return the status, counting an open task past its expiry as expired."""
        if self.status == OPEN and now >= self.expires_at:
            return EXPIRED
        return self.status

    def to_dict(self, now: float) -> dict[str, Any]:
        """Return the JSON shape of the task for the /v1/tasks routes and the CLI."""
        return {
            "id": self.id,
            "grant_id": self.grant_id,
            "parent_id": self.parent_id,
            "path": list(self.path),
            "purpose": self.purpose,
            "scope": " ".join(self.scopes),
            "audiences": list(self.audiences),
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "status": self.status_at(now),
            "expires_at": self.expires_at,
            "closed_at": self.closed_at,
            "closed_by": self.closed_by,
        }


def close_result(task: Task, closed: Sequence[str]) -> dict[str, Any]:
    """Return the JSON shape of a close for ``POST /v1/tasks/{id}/close`` and the CLI.

    Args:
        task: the task as stored after the close, so that ``closed_at`` and
            ``closed_by`` are those of the close that ended it.
        closed: the ids that this close changed from open to closed; none when
            the task was already closed or expired.
    """
    return {
        "id": task.id,
        "closed": list(closed),
        "already_closed": not closed,
        "status": task.status,
        "closed_at": task.closed_at,
        "closed_by": task.closed_by,
    }


def new_task_id(random: bytes | None = None) -> str:
    """Return a new random task id, from ``random`` (16 bytes) when given.

    Args:
        random: 16 bytes from ``secrets.token_bytes``, for a caller that draws the
            bytes of several ids at once.
    """
    if random is None:
        return "tsk_" + secrets.token_hex(16)
    if len(random) != 16:
        raise ValueError(
            f"Invalid random bytes for a task id: expected 16, got {len(random)}"
        )
    return "tsk_" + random.hex()


def _row_to_task(row: Row[Any]) -> Task:
    mapping = row._mapping
    return Task(
        id=mapping["id"],
        grant_id=mapping["grant_id"],
        parent_id=mapping["parent_id"],
        path=tuple(json.loads(mapping["path"])),
        purpose=mapping["purpose"],
        scopes=tuple(json.loads(mapping["scopes"])),
        audiences=tuple(json.loads(mapping["audiences"])),
        opened_by=mapping["opened_by"],
        opened_at=mapping["opened_at"],
        status=mapping["status"],
        expires_at=mapping["expires_at"],
        closed_at=mapping["closed_at"],
        closed_by=mapping["closed_by"],
    )


class TaskStore:
    """Reads and writes the tasks table, with an in-memory cache of task rows."""

    def __init__(self, engine: Engine, revocations: RevocationSet) -> None:
        self._engine = engine
        self._revocations = revocations
        self._cache: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, task_id: str) -> Task | None:
        """Return the task, with status ``closed`` if the revocation set kills it."""
        task = self._cached(task_id)
        if task is None:
            with self._engine.connect() as conn:
                task = self.get_in(conn, task_id)
            if task is None:
                return None
        return self._with_revocation(task)

    def get_in(self, conn: Connection, task_id: str) -> Task | None:
        """Return the task as stored, read on ``conn`` unless cached."""
        cached = self._cached(task_id)
        if cached is not None:
            return cached

        row = conn.execute(_SELECT_TASK, {"task_id": task_id}).first()
        if row is None:
            return None
        task = _row_to_task(row)
        if task.status == OPEN:
            self._remember(task)
        return task

    def list_tasks(
        self, *, status: str | None = None, grant_id: str | None = None, now: float
    ) -> list[Task]:
        """Return tasks in the order they were opened, filtered by status and grant."""
        query = select(tasks).order_by(tasks.c.opened_at, tasks.c.id)
        if grant_id is not None:
            query = query.where(tasks.c.grant_id == grant_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        found = [self._with_revocation(_row_to_task(row)) for row in rows]
        if status is None:
            return found
        return [task for task in found if task.status_at(now) == status]

    def open_in(
        self,
        conn: Connection,
        *,
        grant_id: str,
        parent_id: str | None,
        purpose: str,
        scopes: Iterable[str],
        audiences: Iterable[str],
        expires_at: float,
        opened_by: str,
        now: float,
        task_id: str | None = None,
    ) -> Task:
        """Insert a task; a child must be within its open parent.

        ``task_id`` lets the caller choose the id (from ``new_task_id``) so that it
        can sign a token naming the task before the unit of work runs.

        Raises:
            TaskNotOpenError: the parent is missing, closed, expired or revoked.
            TaskBoundsError: the child's scopes, audiences or expiry exceed the
                parent's, or it names another grant.
        """
        task = self.prepare_open_in(
            conn,
            grant_id=grant_id,
            parent_id=parent_id,
            purpose=purpose,
            scopes=scopes,
            audiences=audiences,
            expires_at=expires_at,
            opened_by=opened_by,
            now=now,
            task_id=task_id,
        )
        self.insert_in(conn, [task])
        return task

    def prepare_open_in(
        self,
        conn: Connection,
        *,
        grant_id: str,
        parent_id: str | None,
        purpose: str,
        scopes: Iterable[str],
        audiences: Iterable[str],
        expires_at: float,
        opened_by: str,
        now: float,
        task_id: str | None = None,
    ) -> Task:
        """Run every check of ``open_in`` and return the task, without inserting it.

        Pass the result to ``insert_in`` on the same connection, in the same unit
        of work, so that the checks and the insert see the same parent.

        Raises:
            TaskNotOpenError: the parent is missing, closed, expired or revoked.
            TaskBoundsError: the child's scopes, audiences or expiry exceed the
                parent's, or it names another grant.
        """
        scope_list = tuple(sorted(set(scopes)))
        audience_list = tuple(sorted(set(audiences)))
        task_id = task_id if task_id is not None else new_task_id()
        if expires_at <= now:
            raise TaskBoundsError("The task expiry must be in the future.")

        path: tuple[str, ...] = (task_id,)
        if parent_id is not None:
            parent = self._open_parent(conn, parent_id, now)
            _check_within(parent, grant_id, scope_list, audience_list, expires_at)
            path = (*parent.path, task_id)

        return Task(
            id=task_id,
            grant_id=grant_id,
            parent_id=parent_id,
            path=path,
            purpose=purpose,
            scopes=scope_list,
            audiences=audience_list,
            opened_by=opened_by,
            opened_at=now,
            status=OPEN,
            expires_at=expires_at,
            closed_at=None,
            closed_by=None,
        )

    def insert_in(self, conn: Connection, opened: Sequence[Task]) -> None:
        """Insert tasks from ``prepare_open_in`` with one statement.

        Not cached here: the rows are not committed yet, and the first read caches
        them.
        """
        if opened:
            conn.execute(_INSERT_TASK, [_task_row(task) for task in opened])

    def close_in(
        self, conn: Connection, task_id: str, *, closed_by: str, now: float
    ) -> list[str]:
        """Close the task and its open descendants; return the ids closed.

        One ``task`` entry for ``task_id`` goes into the revocation set, which kills
        every token of the subtree because tokens carry their task path. A task
        already closed or expired returns an empty list and keeps its
        ``closed_at`` and ``closed_by``.

        Raises:
            TaskNotOpenError: no task has this id.
        """
        task = self.get_in(conn, task_id)
        if task is None:
            raise TaskNotOpenError(reason=f"Task {task_id!r} was not found.")

        subtree = self._subtree(conn, task)
        closing = [item.id for item in subtree if item.status == OPEN]
        if closing:
            conn.execute(
                update(tasks)
                .where(tasks.c.id.in_(closing))
                .values(status=CLOSED, closed_at=now, closed_by=closed_by)
            )
        if task.status == OPEN:
            self._revocations.revoke_in(conn, "task", task.id, task.expires_at)
        self._forget(item.id for item in subtree)
        return closing

    def sweep_in(self, conn: Connection, now: float) -> list[str]:
        """Mark open tasks past their expiry as expired and revoke them.

        Returns:
            The ids marked expired.
        """
        rows = conn.execute(
            select(tasks.c.id, tasks.c.expires_at).where(
                tasks.c.status == OPEN, tasks.c.expires_at <= now
            )
        ).all()
        expired = [row[0] for row in rows]
        if not expired:
            return []

        conn.execute(
            update(tasks)
            .where(tasks.c.id.in_(expired))
            .values(status=EXPIRED, closed_at=now, closed_by="expiry")
        )
        for task_id, expires_at in rows:
            self._revocations.revoke_in(conn, "task", task_id, expires_at)
        self._forget(expired)
        return expired

    def _open_parent(self, conn: Connection, parent_id: str, now: float) -> Task:
        parent = self.get_in(conn, parent_id)
        if parent is None:
            raise TaskNotOpenError(reason=f"Parent task {parent_id!r} was not found.")
        parent = self._with_revocation(parent)
        if not parent.is_open(now):
            raise TaskNotOpenError(
                reason=f"Parent task {parent_id!r} is {parent.status_at(now)}."
            )
        return parent

    def _subtree(self, conn: Connection, task: Task) -> list[Task]:
        rows = conn.execute(select(tasks).where(tasks.c.root_id == task.path[0])).all()
        members = [_row_to_task(row) for row in rows]
        return [item for item in members if task.id in item.path]

    def _with_revocation(self, task: Task) -> Task:
        if task.status != OPEN:
            return task
        if any(self._revocations.is_revoked("task", item) for item in task.path):
            return replace(task, status=CLOSED)
        return task

    def _cached(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._cache.get(task_id)
            if task is not None:
                self._cache.move_to_end(task_id)
            return task

    def _remember(self, task: Task) -> None:
        with self._lock:
            self._cache[task.id] = task
            self._cache.move_to_end(task.id)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def _forget(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            for task_id in task_ids:
                self._cache.pop(task_id, None)


def _check_within(
    parent: Task,
    grant_id: str,
    scopes: tuple[str, ...],
    audiences: tuple[str, ...],
    expires_at: float,
) -> None:
    if grant_id != parent.grant_id:
        raise TaskBoundsError("A child task must belong to its parent's grant.")
    extra_scopes = sorted(set(scopes) - set(parent.scopes))
    if extra_scopes:
        raise TaskBoundsError(
            f"Scopes {' '.join(extra_scopes)!r} are not in the parent task."
        )
    extra_audiences = sorted(set(audiences) - set(parent.audiences))
    if extra_audiences:
        raise TaskBoundsError(
            f"Audiences {' '.join(extra_audiences)!r} are not in the parent task."
        )
    if expires_at > parent.expires_at:
        raise TaskBoundsError("A child task may not outlive its parent task.")


def _task_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "grant_id": task.grant_id,
        "parent_id": task.parent_id,
        "root_id": task.path[0],
        "path": json.dumps(list(task.path)),
        "purpose": task.purpose,
        "scopes": json.dumps(list(task.scopes)),
        "audiences": json.dumps(list(task.audiences)),
        "opened_by": task.opened_by,
        "opened_at": task.opened_at,
        "status": task.status,
        "expires_at": task.expires_at,
        "closed_at": task.closed_at,
        "closed_by": task.closed_by,
    }


_stores: weakref.WeakKeyDictionary[Engine, TaskStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def task_store(engine: Engine, revocations: RevocationSet) -> TaskStore:
    """Return the one TaskStore of an engine, so that its cache is shared.

    ``ServerContext`` has no task store field, so routes and handlers reach the store
    through this function with ``ctx.engine`` and ``ctx.revocations``.
    """
    with _stores_lock:
        store = _stores.get(engine)
        if store is None or store._revocations is not revocations:
            store = TaskStore(engine, revocations)
            _stores[engine] = store
        return store
