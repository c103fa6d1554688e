"""``agentiam task list|show|close``: the task tree, read and closed on the data dir.

These commands act as the administrator, directly on the database, so they need
access to the data directory rather than a session.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from agentiam.audit import AuditEvent
from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit, error
from agentiam.errors import AgentIAMError
from agentiam.tasks.store import CLOSED, EXPIRED, OPEN, close_result, task_store

LIST_COLUMNS = ("id", "status", "grant_id", "parent_id", "purpose", "expires_at")


def register(subparsers: Any) -> None:
    """Add the ``task`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser("task", help="list, show and close tasks")
    verbs = parser.add_subparsers(dest="verb", required=True)

    listing = verbs.add_parser("list", help="list tasks in the order they were opened")
    listing.add_argument(
        "--status",
        choices=(OPEN, CLOSED, EXPIRED),
        help="show only tasks with this status (default: all)",
    )
    listing.add_argument("--grant", metavar="ID", help="show only this grant's tasks")
    _common(listing)
    listing.set_defaults(func=list_tasks)

    show = verbs.add_parser("show", help="show one task")
    show.add_argument("task_id", help="task id")
    _common(show)
    show.set_defaults(func=show_task)

    close = verbs.add_parser(
        "close", help="close a task and its subtree, revoking their tokens"
    )
    close.add_argument("task_id", help="task id")
    _common(close)
    close.set_defaults(func=close_task)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_output_argument(parser)


def list_tasks(args: argparse.Namespace) -> int:
    """Print the tasks, filtered by ``--status`` and ``--grant``."""
    try:
        with open_cli_context(args) as ctx:
            now = ctx.clock()
            store = task_store(ctx.engine, ctx.revocations)
            found = store.list_tasks(status=args.status, grant_id=args.grant, now=now)
            rows = [task.to_dict(now) for task in found]
    except AgentIAMError as err:
        error(str(err))
        return 1
    emit(rows, output=args.output, columns=LIST_COLUMNS)
    return 0


def show_task(args: argparse.Namespace) -> int:
    """Print one task, or fail when no task has the id."""
    try:
        with open_cli_context(args) as ctx:
            task = task_store(ctx.engine, ctx.revocations).get(args.task_id)
            record = task.to_dict(ctx.clock()) if task is not None else None
    except AgentIAMError as err:
        error(str(err))
        return 1
    if record is None:
        error(f"Task '{args.task_id}' was not found.")
        return 1
    emit(record, output=args.output)
    return 0


def close_task(args: argparse.Namespace) -> int:
    """Close a task and its subtree, and print the ids closed.

    A task that was already closed or expired is left as it is, and the command
    exits 0 because the task is closed, as ``POST /v1/tasks/{id}/close`` returns
    200.
    """
    try:
        with open_cli_context(args) as ctx:
            now = ctx.clock()
            store = task_store(ctx.engine, ctx.revocations)
            task = store.get(args.task_id)
            if task is None:
                error(f"Task '{args.task_id}' was not found.")
                return 1

            def work(conn: Any) -> dict[str, Any]:
                closed = store.close_in(conn, task.id, closed_by="cli", now=now)
                event = AuditEvent(
                    type="task.closed",
                    outcome="closed",
                    grant_id=task.grant_id,
                    task_path=list(task.path),
                    details={
                        "by": "cli",
                        "closed": closed,
                        "already_closed": not closed,
                    },
                )
                ctx.audit.record_in(conn, event)
                return close_result(store.get_in(conn, task.id) or task, closed)

            result = ctx.writer.run_sync(work)
    except AgentIAMError as err:
        error(str(err))
        return 1
    if result["already_closed"] and args.output == "text":
        emit(already_closed_message(result))
    else:
        emit(result, output=args.output)
    return 0


def already_closed_message(result: dict[str, Any]) -> str:
    """Return the message for a task closed before: the time and the closing actor."""
    name = f"Task '{result['id']}'"
    when = ""
    if result["closed_at"] is not None:
        when = " at " + datetime.fromtimestamp(result["closed_at"], tz=UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    if result["status"] == EXPIRED:
        return f"{name} had already expired{when}."
    by = f" by {result['closed_by']}" if result["closed_by"] else ""
    return f"{name} was already closed{when}{by}."
