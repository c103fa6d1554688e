"""``agentiam audit trail|verify|export|sign-head|sink run``: the audit log.

These commands read the database in the data dir directly, as the administrator.
``verify`` recomputes the hash chain and the Merkle roots and checks them against
the signed tree heads; it exits 1 naming the first bad position.  An export must
be covered by its signed tree heads to the last event, and ``export`` signs a head
over the events it writes so that it is.  In the database, events the server has
not signed a head over yet are a warning on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agentiam.audit.errors import AuditError, TreeHeadError
from agentiam.audit.export_verifier import EXPORT_VERSION, verify_export
from agentiam.audit.log import StoredEvent, stored_event_from_row
from agentiam.audit.queries import event_to_json, render_trail, trail
from agentiam.audit.siem.ocsf import to_ocsf
from agentiam.audit.siem.sink import AuditSink, SinkDeliveryError
from agentiam.audit.tables import audit_events
from agentiam.audit.tree_head import TreeHead
from agentiam.audit.verify import verify_log, verify_rows_for_head
from agentiam.audit.verify_report import (
    VerifyReport,
    event_count,
    load_trusted_head,
)
from agentiam.cli.context import (
    MissingDatabaseError,
    add_common_arguments,
    add_output_argument,
    open_cli_context,
)
from agentiam.cli.files import (
    FileAccessError,
    create_private_file,
    describe_file_error,
    open_binary_file,
    read_text_file,
)
from agentiam.cli.output import emit, error
from agentiam.jose import KeyLookup, VerificationKey

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
    verify.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="an export from 'agentiam audit export' to verify instead of the "
        "database (default: the database in the data dir)",
    )
    verify.add_argument(
        "--trusted-head",
        action="append",
        default=[],
        metavar="JWS_OR_FILE",
        help="a signed tree head kept from earlier, or a file with one; the log "
        "must contain it, else 'log rolled back' (repeatable)",
    )
    verify.add_argument(
        "--jwks",
        metavar="FILE",
        help="JWKS file with the server's public keys (default: the data dir's keys)",
    )
    _add_arguments(verify)
    verify.set_defaults(func=verify_audit_log)

    export = verbs.add_parser(
        "export", help="write every event and tree head to FILE as JSON lines"
    )
    export.add_argument("file", metavar="FILE", help="output file ('-' for stdout)")
    export.add_argument(
        "--format",
        choices=("jsonl", "ocsf"),
        default="jsonl",
        help="jsonl: the stored events and tree heads; ocsf: one OCSF object per "
        "event per line, without tree heads (default: jsonl)",
    )
    _add_arguments(export)
    export.set_defaults(func=export_audit_log)

    sign = verbs.add_parser(
        "sign-head", help="sign and store a tree head over every event now"
    )
    _add_arguments(sign)
    sign.set_defaults(func=sign_head)

    _register_sink(verbs)


def _register_sink(verbs: Any) -> None:
    sink = verbs.add_parser(
        "sink", help="push audit events as OCSF to the audit_sink_url endpoint"
    )
    sink_verbs = sink.add_subparsers(dest="sink_verb", required=True)
    run = sink_verbs.add_parser(
        "run", help="deliver the events after the sink's cursor, at least once"
    )
    mode = run.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--once", action="store_true", help="deliver every pending event, then exit"
    )
    mode.add_argument(
        "--follow", action="store_true", help="keep delivering new events until killed"
    )
    run.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        metavar="N",
        help="with --once, exit 1 after N failed attempts at one batch (default: 5)",
    )
    _add_arguments(run)
    run.set_defaults(func=run_sink)


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
        error(f"Task '{args.task_id}' was not found in the audit log.")
        return 1
    if _output(args) == "json":
        emit(result.to_dict(), output="json")
    else:
        emit(render_trail(result))
    return 0


def verify_audit_log(args: argparse.Namespace) -> int:
    """Verify the whole log; exit 1 naming the first problem."""

    def progress(count: int) -> None:
        sys.stderr.write(f"verified {event_count(count)}\n")

    try:
        report = _run_verify(args, progress)
    except FileAccessError as err:
        error(str(err))
        return 1
    except (AuditError, TreeHeadError, MissingDatabaseError, OSError) as err:
        error(f"audit log verification failed: {err}")
        return 1

    summary: dict[str, Any] = {
        "ok": report.ok,
        "events": report.events,
        "tree_heads": report.tree_heads,
        "problems": [str(problem) for problem in report.problems],
        "warnings": [str(warning) for warning in report.warnings],
    }
    for warning in report.warnings:
        sys.stderr.write(
            f"agentiam: warning: {warning} yet; 'agentiam audit sign-head' "
            "signs one now\n"
        )
    if _output(args) == "json":
        emit(summary, output="json")
    elif report.ok:
        heads = "head" if report.tree_heads == 1 else "heads"
        emit(
            f"audit log verified: {event_count(report.events)}, "
            f"{report.tree_heads} signed tree {heads}"
        )
    if report.first_problem is not None:
        error(f"audit log verification failed at {report.first_problem}")
        for problem in report.problems[1:]:
            error(f"also: {problem}")
        return 1
    return 0


def _run_verify(
    args: argparse.Namespace, progress: Callable[[int], None]
) -> VerifyReport:
    if args.jwks is not None and args.file is not None:
        keys = _jwks_lookup(Path(args.jwks))
        return _verify_file(args, keys, None, progress)

    # Opening the log must not repair the node table that verify checks.
    with open_cli_context(
        args, rebuild_audit_nodes=False, require_existing=True
    ) as ctx:
        keys = (
            ctx.keyring.lookup if args.jwks is None else _jwks_lookup(Path(args.jwks))
        )
        issuer = ctx.settings.issuer
        if args.file is not None:
            return _verify_file(args, keys, issuer, progress)
        trusted = _trusted_heads(args.trusted_head, keys, issuer)
        return verify_log(
            ctx.engine, keys, issuer=issuer, progress=progress, trusted_heads=trusted
        )


def _verify_file(
    args: argparse.Namespace,
    keys: KeyLookup,
    issuer: str | None,
    progress: Callable[[int], None],
) -> VerifyReport:
    trusted = _trusted_heads(args.trusted_head, keys, issuer)
    # Bytes, so that a line that is not UTF-8 is named by its own number.
    with open_binary_file("export", args.file) as lines:
        return verify_export(
            lines, keys, issuer=issuer, progress=progress, trusted_heads=trusted
        )


def _trusted_heads(
    values: list[str], keys: KeyLookup, issuer: str | None
) -> list[TreeHead]:
    """Verify each ``--trusted-head``: a compact JWS, or a file containing one."""
    heads = []
    for value in values:
        # A compact JWS has two dots and no path separator; anything else is a file.
        is_jws = value.count(".") == 2 and "/" not in value
        text = value if is_jws else read_text_file("trusted tree head", value)
        try:
            heads.append(load_trusted_head(text, keys, issuer=issuer))
        except TreeHeadError as err:
            raise TreeHeadError(f"Trusted tree head {value[:40]!r}: {err}") from err
    return heads


def _jwks_lookup(path: Path) -> KeyLookup:
    """Return a key lookup over the keys of a JWKS file."""
    text = read_text_file("JWKS", path)
    try:
        keys = {
            jwk["kid"]: VerificationKey.from_jwk(jwk)
            for jwk in json.loads(text)["keys"]
        }
    except (ValueError, KeyError, TypeError) as err:
        raise AuditError(f"JWKS file {str(path)!r} is invalid: {err}") from err
    return keys.get


def export_audit_log(args: argparse.Namespace) -> int:
    """Write one JSON line per event, then one per tree head, covering them all."""
    with open_cli_context(args) as ctx:
        if ctx.audit.keyring is None:
            ctx.audit.keyring = ctx.keyring
        try:
            count = _write_export(ctx, args.format, args.file)
        except FileAccessError as err:
            error(str(err))
            return 1
        except AuditError as err:
            error(f"audit export failed: {err}")
            return 1
    if args.file != "-":
        emit({"file": args.file, "events": count[0], "tree_heads": count[1]},
             output=_output(args))  # fmt: skip
    return 0


def _write_export(ctx: Any, export_format: str, file: str) -> tuple[int, int]:
    """Write the export to ``file``, or to stdout for '-'; return the counts.

    Raises:
        FileAccessError: the file cannot be created or written.
        AuditError: the log does not verify, so no head was signed over it.
    """
    exporter = _EXPORTERS[export_format]
    if file == "-":
        return exporter(ctx, sys.stdout)
    try:
        with create_private_file("export", file) as out:
            return exporter(ctx, out)
    except OSError as err:
        message = describe_file_error("export", file, err, writing=True)
        raise FileAccessError(message) from err


def _event_rows(ctx: Any, size: int | None = None) -> Iterator[Any]:
    """Yield the event rows in seq order, those below ``size`` when it is given."""
    after = -1
    while True:
        query = select(audit_events).where(audit_events.c.seq > after)
        if size is not None:
            query = query.where(audit_events.c.seq < size)
        with ctx.engine.connect() as conn:
            rows = conn.execute(
                query.order_by(audit_events.c.seq).limit(_EXPORT_BATCH)
            ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def _stored_events(ctx: Any) -> Iterator[StoredEvent]:
    for row in _event_rows(ctx):
        yield stored_event_from_row(row)


def _written(ctx: Any, out: Any, size: int, count: list[int]) -> Iterator[Any]:
    """Write each event row below ``size`` as an export line, then yield it."""
    for row in _event_rows(ctx, size):
        line = {"kind": "event", **event_to_json(stored_event_from_row(row))}
        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")
        count[0] += 1
        yield row


def _export(ctx: Any, out: Any) -> tuple[int, int]:
    """Write the events and tree heads, with a fresh head over every event.

    The heads are read before the events, and the events stop at the size read
    then, so every head in the file covers events that are in it.  When no
    stored head has that size and the audit log has a key ring, the rows are
    verified as they are written.  If they verify, a head over them is signed
    and stored; if not, the file gets no fresh head and this raises.

    Raises:
        AuditError: the log does not verify, so no head was signed over it.
    """
    heads = ctx.audit.tree_heads()
    size = ctx.audit.stored_size()
    header = {"kind": "header", "version": EXPORT_VERSION}
    out.write(json.dumps(header, separators=(",", ":")) + "\n")

    count = [0]
    rows = _written(ctx, out, size, count)
    keyring = ctx.audit.keyring
    problem: str | None = None
    if keyring is not None and all(head.size != size for head in heads):
        report, root = verify_rows_for_head(
            rows, heads, keyring.lookup, issuer=ctx.settings.issuer
        )
        if report.first_problem is not None:
            problem = f"the log does not verify at {report.first_problem}"
        elif root != ctx.audit.root(size):
            problem = "the stored Merkle tree nodes disagree with the events"
        else:
            heads.append(ctx.audit.sign_tree_head_sync(size))
    # A scan that stopped at a problem leaves rows to write.
    for _ in rows:
        pass

    for head in heads:
        line = {"kind": "tree_head", **head.to_dict()}
        out.write(json.dumps(line, separators=(",", ":")) + "\n")
    if problem is not None:
        raise AuditError(
            f"{problem}, so no tree head was signed over the exported events; "
            "run 'agentiam audit verify' to find the cause"
        )
    return count[0], len(heads)


def _export_ocsf(ctx: Any, out: Any) -> tuple[int, int]:
    events = 0
    for stored in _stored_events(ctx):
        line = json.dumps(to_ocsf(stored), separators=(",", ":"), ensure_ascii=False)
        out.write(line + "\n")
        events += 1
    return events, 0


_EXPORTERS: dict[str, Callable[[Any, Any], tuple[int, int]]] = {
    "jsonl": _export,
    "ocsf": _export_ocsf,
}


def run_sink(args: argparse.Namespace) -> int:
    """Deliver audit events to ``audit_sink_url``; exit 1 if a batch keeps failing."""
    with open_cli_context(args) as ctx:
        if not ctx.settings.audit_sink_url:
            error("audit_sink_url is not set; set it in the config file or the "
                  "AGENTIAM_AUDIT_SINK_URL environment variable")  # fmt: skip
            return 1
        max_attempts = max(1, args.max_attempts) if args.once else None
        sink = AuditSink.from_settings(
            ctx.settings, ctx.engine, max_attempts=max_attempts
        )
        try:
            delivered = asyncio.run(_run_sink(sink, follow=args.follow))
        except SinkDeliveryError as err:
            error(str(err))
            return 1
    emit({"sink": sink.name, "events": delivered}, output=_output(args))
    return 0


async def _run_sink(sink: AuditSink, *, follow: bool) -> int:
    async with sink:
        if follow:
            await sink.run()
        return await sink.deliver_pending()


def sign_head(args: argparse.Namespace) -> int:
    """Sign a tree head over every committed event and print it."""
    with open_cli_context(args) as ctx:
        if ctx.audit.keyring is None:
            ctx.audit.keyring = ctx.keyring
        head = ctx.audit.sign_tree_head_sync()
    emit(head.to_dict(), output=_output(args))
    return 0
