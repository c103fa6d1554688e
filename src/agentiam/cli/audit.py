"""``agentiam audit trail|verify|export|sign-head``: the audit log on the data dir.

These commands read the database directly, as the administrator.  ``verify``
recomputes the hash chain and the Merkle roots and checks them against the signed
tree heads; it exits 1 naming the first bad position.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agentiam.audit.log import stored_event_from_row
from agentiam.audit.queries import event_to_json, render_trail, trail
from agentiam.audit.tables import audit_events
from agentiam.audit.verify import verify_log
from agentiam.cli.context import (
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.output import emit, error

EXPORT_VERSION = 1
_EXPORT_BATCH = 10_000


def register(subparsers: Any) -> None:
    """Add the ``audit`` noun and its verbs to the top-level parser."""
    parser = subparsers.add_parser(
        "audit", help="read, verify and export the audit log"
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    trail_parser = verbs.add_parser(
        "trail", help="show the decision trail of a task and its sub-tasks"
    )
    trail_parser.add_argument("task_id", metavar="TASK", help="task id")
    _add_arguments(trail_parser)
    trail_parser.set_defaults(func=show_trail)

    verify = verbs.add_parser(
        "verify", help="check the hash chain, the Merkle tree and the signed heads"
    )
    _add_arguments(verify)
    verify.set_defaults(func=verify_audit_log)

    export = verbs.add_parser(
        "export", help="write every event and tree head to FILE as JSON lines"
    )
    export.add_argument("file", metavar="FILE", help="output file ('-' for stdout)")
    _add_arguments(export)
    export.set_defaults(func=export_audit_log)

    sign = verbs.add_parser(
        "sign-head", help="sign and store a tree head over every event now"
    )
    _add_arguments(sign)
    sign.set_defaults(func=sign_head)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    add_output_argument(parser)


def _output(args: argparse.Namespace) -> str:
    return str(getattr(args, "output", "text"))


def show_trail(args: argparse.Namespace) -> int:
    """Print the trail of ``TASK``: approvals first, then the task tree."""
    with open_cli_context(args) as ctx:
        result = trail(ctx.engine, args.task_id)
    empty = not result.approvals and not result.root.events
    if empty and not result.root.children:
        error(f"no audit event names task '{args.task_id}'")
        return 1
    if _output(args) == "json":
        emit(result.to_dict(), output="json")
    else:
        emit(render_trail(result))
    return 0


def verify_audit_log(args: argparse.Namespace) -> int:
    """Verify the whole log; exit 1 naming the first problem."""

    def progress(count: int) -> None:
        sys.stderr.write(f"verified {count} events\n")

    with open_cli_context(args) as ctx:
        report = verify_log(
            ctx.engine,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            progress=progress,
        )

    summary: dict[str, Any] = {
        "ok": report.ok,
        "events": report.events,
        "tree_heads": report.tree_heads,
        "problems": [str(problem) for problem in report.problems],
    }
    if _output(args) == "json":
        emit(summary, output="json")
    elif report.ok:
        emit(
            f"audit log verified: {report.events} events, "
            f"{report.tree_heads} signed tree heads"
        )
    if report.first_problem is not None:
        error(f"audit log verification failed at {report.first_problem}")
        for problem in report.problems[1:]:
            error(f"also: {problem}")
        return 1
    return 0


def export_audit_log(args: argparse.Namespace) -> int:
    """Write one JSON line per event, then one per tree head."""
    with open_cli_context(args) as ctx:
        if args.file == "-":
            count = _export(ctx, sys.stdout)
        else:
            with Path(args.file).open("w", encoding="utf-8") as out:
                count = _export(ctx, out)
    if args.file != "-":
        emit({"file": args.file, "events": count[0], "tree_heads": count[1]},
             output=_output(args))  # fmt: skip
    return 0


def _export(ctx: Any, out: Any) -> tuple[int, int]:
    header = {"kind": "header", "version": EXPORT_VERSION}
    out.write(json.dumps(header, separators=(",", ":")) + "\n")

    events = 0
    after = -1
    while True:
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(_EXPORT_BATCH)
            ).all()
        if not rows:
            break
        for row in rows:
            line = {"kind": "event", **event_to_json(stored_event_from_row(row))}
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
        events += len(rows)
        after = rows[-1].seq

    heads = ctx.audit.tree_heads()
    for head in heads:
        line = {"kind": "tree_head", **head.to_dict()}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return events, len(heads)


def sign_head(args: argparse.Namespace) -> int:
    """Sign a tree head over every committed event and print it."""
    with open_cli_context(args) as ctx:
        if ctx.audit.keyring is None:
            ctx.audit.keyring = ctx.keyring
        head = ctx.audit.sign_tree_head_sync()
    emit(head.to_dict(), output=_output(args))
    return 0
