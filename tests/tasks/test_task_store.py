"""The task store: open within the parent, close a subtree, expiry and the sweep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from agentiam.delegation.grant_tables import grants
from agentiam.identity import tables as identity_tables
from agentiam.revocation import RevocationSet
from agentiam.revocation.tables import revocations
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter
from agentiam.tasks import CLOSED, EXPIRED, OPEN, Task, TaskStore
from agentiam.tasks.errors import TaskBoundsError, TaskNotOpenError
from agentiam.tasks.store import new_task_id
from agentiam.tasks.tables import tasks

NOW = 1_800_000_000.0
API = "https://support.example/api"


class Tree:
    """A task store on a fresh database, with helpers to open and close tasks."""

    def __init__(self, tmp_path: Path) -> None:
        self.engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'tasks.db'}")
        # Foreign keys are not enforced on this engine, so the grant need not exist.
        tables = [identity_tables.users, identity_tables.agent_classes, grants]
        metadata.create_all(self.engine, tables=[*tables, tasks, revocations])
        self.writer = GroupCommitWriter(self.engine, batch_wait_ms=0)
        self.writer.start()
        self.now = NOW
        self.revocations = RevocationSet(self.engine, clock=lambda: self.now)
        self.store = TaskStore(self.engine, self.revocations)

    def open(self, parent: Task | None = None, **changes: Any) -> Task:
        values: dict[str, Any] = {
            "grant_id": "grt-1",
            "parent_id": parent.id if parent is not None else None,
            "purpose": "Work ticket T-1",
            "scopes": ("refunds", "tickets"),
            "audiences": (API,),
            "expires_at": NOW + 600,
            "opened_by": "spiffe://agentiam.local/agent/a/i-1",
            "now": self.now,
        }
        values.update(changes)
        return self.writer.run_sync(lambda conn: self.store.open_in(conn, **values))

    def close(self, task: Task) -> list[str]:
        return self.writer.run_sync(
            lambda conn: self.store.close_in(
                conn, task.id, closed_by="u-1", now=self.now
            )
        )


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    result = Tree(tmp_path)
    yield result
    result.writer.close()
    result.engine.dispose()


def test_open_child_has_path(tree: Tree) -> None:
    root = tree.open()
    child = tree.open(root, scopes=("refunds",))

    assert child.path == (root.id, child.id)
    assert tree.store.get(child.id) == child


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"scopes": ("admin",)}, "'admin'", id="wider-scope"),
        pytest.param({"audiences": ("https://evil",)}, "'https://evil'", id="audience"),
        pytest.param({"expires_at": NOW + 601}, "outlive", id="longer-expiry"),
        pytest.param({"grant_id": "grt-2"}, "grant", id="other-grant"),
    ],
)
def test_open_rejects_child_beyond_parent(
    tree: Tree, changes: dict[str, Any], message: str
) -> None:
    root = tree.open()

    with pytest.raises(TaskBoundsError, match=message):
        tree.open(root, **changes)


def test_open_rejects_closed_parent(tree: Tree) -> None:
    root = tree.open()
    tree.close(root)

    with pytest.raises(TaskNotOpenError):
        tree.open(root)


def test_close_closes_subtree(tree: Tree) -> None:
    root = tree.open()
    child = tree.open(root)
    grandchild = tree.open(child)
    sibling = tree.open(root)

    closed = tree.close(child)

    assert sorted(closed) == sorted([child.id, grandchild.id])
    assert tree.store.get(grandchild.id).status == CLOSED  # type: ignore[union-attr]
    assert tree.store.get(sibling.id).status == OPEN  # type: ignore[union-attr]
    assert tree.revocations.is_revoked("task", child.id)
    assert not tree.revocations.is_revoked("task", grandchild.id)


def test_close_twice_returns_nothing(tree: Tree) -> None:
    root = tree.open()
    tree.close(root)

    assert tree.close(root) == []


def test_close_unknown_task(tree: Tree) -> None:
    with pytest.raises(TaskNotOpenError):
        tree.writer.run_sync(
            lambda conn: tree.store.close_in(conn, "tsk-none", closed_by="u", now=NOW)
        )


def test_task_past_expiry_counts_as_expired(tree: Tree) -> None:
    root = tree.open()
    tree.now = NOW + 601

    task = tree.store.get(root.id)

    assert task is not None
    assert not task.is_open(tree.now)
    assert task.status_at(tree.now) == EXPIRED


def test_sweep_marks_and_revokes_expired(tree: Tree) -> None:
    root = tree.open()
    short = tree.open(root, expires_at=NOW + 60)
    tree.now = NOW + 61

    expired = tree.writer.run_sync(lambda conn: tree.store.sweep_in(conn, tree.now))

    assert expired == [short.id]
    assert tree.store.get(short.id).status == EXPIRED  # type: ignore[union-attr]
    assert tree.revocations.is_revoked("task", short.id)
    assert tree.store.get(root.id).status == OPEN  # type: ignore[union-attr]


def test_list_filters_by_status(tree: Tree) -> None:
    root = tree.open()
    child = tree.open(root)
    tree.close(child)

    open_ids = [task.id for task in tree.store.list_tasks(status=OPEN, now=tree.now)]

    assert open_ids == [root.id]


def test_new_task_id_from_random_bytes() -> None:
    assert new_task_id(bytes(range(16))) == "tsk_000102030405060708090a0b0c0d0e0f"


@pytest.mark.parametrize("size", [15, 17], ids=["short", "long"])
def test_new_task_id_rejects_wrong_length(size: int) -> None:
    with pytest.raises(
        ValueError, match=f"Invalid random bytes for a task id: expected 16, got {size}"
    ):
        new_task_id(bytes(size))
