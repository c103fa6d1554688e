"""HTTP routes of the audit log under ``/v1/audit/``.

Administrators (session with ``admin``) query events, trails, proofs and tree
heads.  Resource servers (``client_secret_basic``) read proofs and tree heads and
append ``decision`` events with ``POST /v1/audit/decisions``, which responds only
after the events are committed.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Column, String, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from agentiam import strict_json
from agentiam.audit.chain import b64url
from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.queries import EventQuery, event_to_json, find_events, trail
from agentiam.audit.tables import audit_decision_ids
from agentiam.errors import (
    InvalidRequestError,
    NotFoundError,
    TemporarilyUnavailableError,
)
from agentiam.identity.authn import require_admin, require_client
from agentiam.identity.clients import Client

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

# The decision record of agentiam.enforce (its DECISION_VERSION 1).
DECISION_RECORD_VERSION: Final = 1
MAX_DECISIONS_BODY: Final = 512 * 1024
MAX_DECISIONS_PER_BATCH: Final = 500
# The largest seq a BIGINT column stores (signed 64 bits) on SQLite and PostgreSQL.
MAX_SEQ: Final = 2**63 - 1
_ASCII_DIGITS: Final = re.compile(r"[0-9]+")
# A longer seq in an error message is cut to this many digits.
_SHOWN_DIGITS: Final = 20


def _column_length(column: Column[Any]) -> int:
    """Return the declared length of a ``String`` column."""
    if not isinstance(column.type, String) or column.type.length is None:
        raise TypeError(f"column {column.name!r} has no declared length")
    return column.type.length


# A decision id is stored in audit_decision_ids, so it must fit that column:
# PostgreSQL refuses a longer value, and a batch retried with it never commits.
MAX_DECISION_ID_LENGTH: Final = _column_length(audit_decision_ids.c.decision_id)

_DECISION_KEYS: Final = frozenset(
    {
        "ver",
        "id",
        "time",
        "audience",
        "decision",
        "outcome",
        "reason",
        "method",
        "path",
        "status",
        "human",
        "actors",
        "task_path",
        "grant_id",
        "receipt_hash",
        "jti",
    }
)
_REQUIRED_DECISION_KEYS: Final = frozenset(
    {"ver", "id", "time", "decision", "method", "path", "status"}
)
# The outcomes a resource server may report for each decision; the first is the
# default. "error" is an allowed request whose application then failed.
_DECISION_OUTCOMES: Final = {
    "allow": ("granted", "error"),
    "deny": ("refused",),
}
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _int_param(request: Request, name: str) -> int | None:
    text = _text_param(request, name)
    if text is None:
        return None
    # At most 18 digits, so every value fits a BIGINT column.  ``str.isdigit``
    # also accepts digits such as "²" that ``int`` rejects, hence the pattern.
    if _ASCII_DIGITS.fullmatch(text) is None or len(text) > 18:
        raise InvalidRequestError(
            f"Parameter '{name}' is '{text[:32]}'; expected a non-negative integer."
        )
    return int(text)


def _required_int(request: Request, name: str) -> int:
    value = _int_param(request, name)
    if value is None:
        raise InvalidRequestError(f"Parameter '{name}' is missing.")
    return value


def _event_seq(text: str) -> int:
    """Return the seq in the path ``/v1/audit/events/{seq}``.

    Raises:
        HTTPException: 404, as for an unknown path, because ``text`` is not
            ASCII digits.
        NotFoundError: the seq is above ``MAX_SEQ``, so no event has it.
    """
    if _ASCII_DIGITS.fullmatch(text) is None:
        raise HTTPException(status_code=404)
    digits = text.lstrip("0") or "0"
    # The length check comes first: ``int`` rejects more than 4300 digits.
    if len(digits) <= len(str(MAX_SEQ)) and int(digits) <= MAX_SEQ:
        return int(digits)
    if len(digits) > _SHOWN_DIGITS:
        quoted = f"'{digits[:_SHOWN_DIGITS]}...' ({len(digits)} digits)"
    else:
        quoted = f"'{digits}'"
    raise NotFoundError(f"Audit event {quoted} was not found.")


def _text_param(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise InvalidRequestError(f"Parameter '{name}' is repeated.")
    return values[0] if values else None


def _float_param(request: Request, name: str) -> float | None:
    text = _text_param(request, name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError as err:
        raise InvalidRequestError(
            f"Parameter '{name}' is '{text[:32]}'; expected Unix seconds."
        ) from err
    if not math.isfinite(value):
        raise InvalidRequestError(f"Parameter '{name}' must be a finite number.")
    return value


def _event_query(request: Request) -> EventQuery:
    known = {
        "task", "grant", "human", "agent", "since", "until",
        "decision", "type", "after", "limit",
    }  # fmt: skip
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequestError(f"Parameter '{unknown[0]}' is not supported.")
    limit = _int_param(request, "limit")
    try:
        return EventQuery(
            task=_text_param(request, "task"),
            grant_id=_text_param(request, "grant"),
            human=_text_param(request, "human"),
            agent=_text_param(request, "agent"),
            since=_float_param(request, "since"),
            until=_float_param(request, "until"),
            decision=_text_param(request, "decision"),
            type=_text_param(request, "type"),
            after_seq=_int_param(request, "after"),
            limit=100 if limit is None else limit,
        )
    except AuditError as err:
        raise InvalidRequestError(str(err)) from err


async def _require_reader(request: Request, ctx: ServerContext) -> None:
    """Accept an administrator session or a resource-server client."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        await require_client(request, ctx)
    else:
        await require_admin(request, ctx)


async def _json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/json"
    ):
        raise InvalidRequestError("Expected content type application/json.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DECISIONS_BODY:
            raise InvalidRequestError(
                f"The body is larger than {MAX_DECISIONS_BODY} bytes."
            )
    try:
        return strict_json.loads(body, what="The body")
    except strict_json.StrictJSONError as err:
        raise InvalidRequestError(f"{err}.") from err


def _check_decision_shape(index: int, record: Any) -> Mapping[str, Any]:
    where = f"decisions[{index}]"
    if not isinstance(record, dict):
        raise InvalidRequestError(f"'{where}' must be an object.")
    unknown = sorted(set(record) - _DECISION_KEYS)
    if unknown:
        raise InvalidRequestError(f"'{where}' has unknown member '{unknown[0][:64]}'.")
    missing = sorted(_REQUIRED_DECISION_KEYS - set(record))
    if missing:
        raise InvalidRequestError(f"'{where}' is missing member '{missing[0]}'.")
    if record["ver"] != DECISION_RECORD_VERSION:
        raise InvalidRequestError(f"'{where}.ver' must be {DECISION_RECORD_VERSION}.")
    decision = record["decision"]
    outcomes = _DECISION_OUTCOMES.get(decision) if isinstance(decision, str) else None
    if outcomes is None:
        raise InvalidRequestError(f"'{where}.decision' must be 'allow' or 'deny'.")
    outcome = record.get("outcome", outcomes[0])
    if outcome not in outcomes:
        expected = " or ".join(f"'{name}'" for name in outcomes)
        raise InvalidRequestError(
            f"'{where}.outcome' must be {expected} when the decision is '{decision}'."
        )

    status = record["status"]
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or not (100 <= status <= 599)
    ):
        raise InvalidRequestError(f"'{where}.status' must be an HTTP status code.")
    observed = record["time"]
    if isinstance(observed, bool) or not isinstance(observed, int | float):
        raise InvalidRequestError(f"'{where}.time' must be Unix seconds.")
    for name in ("id", "method", "path"):
        value = record[name]
        if not isinstance(value, str) or not value or len(value) > 2048:
            raise InvalidRequestError(f"'{where}.{name}' must be a non-empty string.")
    if len(record["id"]) > MAX_DECISION_ID_LENGTH:
        raise InvalidRequestError(
            f"'{where}.id' has {len(record['id'])} characters; "
            f"the maximum is {MAX_DECISION_ID_LENGTH}."
        )
    if not record["path"].startswith("/"):
        raise InvalidRequestError(f"'{where}.path' must start with '/'.")
    return record


def _decision_event(index: int, record: Any, client: Client) -> AuditEvent:
    """Turn one strictly checked decision record into a ``decision`` event."""
    checked = _check_decision_shape(index, record)
    audience = checked.get("audience")
    if audience is not None and audience not in client.audiences:
        raise InvalidRequestError(
            f"'decisions[{index}].audience' is not an audience of this client."
        )
    request_record: dict[str, Any] = {
        "method": checked["method"],
        "path": checked["path"],
        "status": checked["status"],
    }
    if checked.get("audience") is not None:
        request_record["audience"] = checked["audience"]
    try:
        return AuditEvent(
            type="decision",
            decision=checked["decision"],
            outcome=checked.get("outcome", _DECISION_OUTCOMES[checked["decision"]][0]),
            reason=checked.get("reason"),
            human=checked.get("human"),
            receipt_hash=checked.get("receipt_hash"),
            grant_id=checked.get("grant_id"),
            actors=checked.get("actors") or (),
            task_path=checked.get("task_path") or (),
            request=request_record,
            details={
                "client_id": client.client_id,
                "decision_id": checked["id"],
                "observed_at": checked["time"],
                "jti": checked.get("jti"),
            },
        )
    except AuditError as err:
        raise InvalidRequestError(f"'decisions[{index}]' is invalid: {err}") from err


def _decisions_from_body(body: Any, client: Client) -> list[AuditEvent]:
    if not isinstance(body, dict) or set(body) != {"ver", "decisions"}:
        raise InvalidRequestError(
            "The body must be an object with exactly 'ver' and 'decisions'."
        )
    if body["ver"] != DECISION_RECORD_VERSION:
        raise InvalidRequestError(f"'ver' must be {DECISION_RECORD_VERSION}.")
    records = body["decisions"]
    if not isinstance(records, list) or not records:
        raise InvalidRequestError("'decisions' must be a non-empty array.")
    if len(records) > MAX_DECISIONS_PER_BATCH:
        raise InvalidRequestError(
            f"'decisions' has {len(records)} entries; "
            f"the maximum is {MAX_DECISIONS_PER_BATCH}."
        )
    return [
        _decision_event(index, record, client) for index, record in enumerate(records)
    ]


def _append_decisions(
    conn: Connection, audit: AuditLog, client_id: str, events: list[AuditEvent]
) -> list[int | None]:
    """Append each decision not seen before; ``None`` marks a duplicate id."""
    seqs: list[int | None] = []
    for event in events:
        decision_id = event.details["decision_id"]
        seen = conn.execute(
            select(audit_decision_ids.c.seq).where(
                audit_decision_ids.c.client_id == client_id,
                audit_decision_ids.c.decision_id == decision_id,
            )
        ).first()
        if seen is not None:
            seqs.append(None)
            continue
        seq = audit.record_in(conn, event)
        conn.execute(
            insert(audit_decision_ids).values(
                client_id=client_id, decision_id=decision_id, seq=seq
            )
        )
        seqs.append(seq)
    return seqs


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the ``/v1/audit/`` routes bound to ``ctx``."""
    handlers = _Handlers(ctx)
    return [
        Route("/v1/audit/events", handlers.events, methods=["GET"]),
        # Not "{seq:int}": its conversion runs before the handler, so a seq
        # of more than 4300 digits would raise there.
        Route("/v1/audit/events/{seq}", handlers.event, methods=["GET"]),
        Route("/v1/audit/trail/{task_id}", handlers.trail, methods=["GET"]),
        Route("/v1/audit/decisions", handlers.decisions, methods=["POST"]),
        Route("/v1/audit/proofs/inclusion", handlers.inclusion_proof, methods=["GET"]),
        Route(
            "/v1/audit/proofs/consistency",
            handlers.consistency_proof,
            methods=["GET"],
        ),
        Route(
            "/v1/audit/tree-heads/latest", handlers.latest_tree_head, methods=["GET"]
        ),
        Route("/v1/audit/tree-heads", handlers.sign_tree_head, methods=["POST"]),
    ]


class _Handlers:
    """The route handlers, sharing one context."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def _run(self, work: Callable[[], Any]) -> Any:
        try:
            return await asyncio.to_thread(work)
        except AuditError as err:
            raise InvalidRequestError(str(err)) from err

    async def events(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/events``: events matching the query parameters."""
        await require_admin(request, self.ctx)
        query = _event_query(request)
        found = await self._run(lambda: find_events(self.ctx.engine, query))
        return JSONResponse(
            {"events": [event_to_json(stored) for stored in found]},
            headers=_NO_STORE,
        )

    async def event(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/events/{seq}``: one event."""
        await require_admin(request, self.ctx)
        seq = _event_seq(request.path_params["seq"])
        stored = await self._run(lambda: self.ctx.audit.get(seq))
        if stored is None:
            raise NotFoundError(f"Audit event '{seq}' was not found.")
        return JSONResponse(event_to_json(stored), headers=_NO_STORE)

    async def trail(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/trail/{task_id}``: the decision trail of a task."""
        await require_admin(request, self.ctx)
        task_id = request.path_params["task_id"]
        result = await self._run(lambda: trail(self.ctx.engine, task_id))
        if (
            not result.approvals
            and not result.root.events
            and not (result.root.children)
        ):
            raise NotFoundError(
                f"Task '{task_id[:64]}' was not found in the audit log."
            )
        return JSONResponse(result.to_dict(), headers=_NO_STORE)

    async def decisions(self, request: Request) -> JSONResponse:
        """``POST /v1/audit/decisions``: append a resource server's decisions.

        The batch is appended in one unit of work, so it is kept whole or not at
        all, and the response is sent after the commit.
        """
        client = await require_client(request, self.ctx)
        events = _decisions_from_body(await _json_body(request), client)
        audit = self.ctx.audit
        try:
            seqs = await self.ctx.writer.submit(
                lambda conn: _append_decisions(conn, audit, client.client_id, events)
            )
        except SQLAlchemyError as err:
            raise TemporarilyUnavailableError(
                reason=f"audit decisions not committed: {err!r}"
            ) from err
        appended = [seq for seq in seqs if seq is not None]
        if appended:
            audit.note_committed(max(appended) + 1)
        return JSONResponse(
            {"accepted": len(appended), "duplicates": len(seqs) - len(appended)},
            headers=_NO_STORE,
        )

    async def inclusion_proof(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/proofs/inclusion?seq=&tree_size=``."""
        await _require_reader(request, self.ctx)
        seq = _required_int(request, "seq")
        size = _required_int(request, "tree_size")
        audit = self.ctx.audit

        def work() -> dict[str, Any]:
            stored = audit.get(seq)
            if stored is None or seq >= size:
                raise NotFoundError(
                    f"Audit event '{seq}' was not found in the tree of size {size}."
                )
            path = audit.inclusion_proof(seq, size)
            return {
                "seq": seq,
                "tree_size": size,
                "leaf_hash": b64url(stored.leaf_hash),
                "audit_path": [b64url(value) for value in path],
            }

        return JSONResponse(await self._run(work), headers=_NO_STORE)

    async def consistency_proof(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/proofs/consistency?first=&second=``."""
        await _require_reader(request, self.ctx)
        first = _required_int(request, "first")
        second = _required_int(request, "second")
        path = await self._run(lambda: self.ctx.audit.consistency_proof(first, second))
        return JSONResponse(
            {
                "first": first,
                "second": second,
                "consistency_path": [b64url(value) for value in path],
            },
            headers=_NO_STORE,
        )

    async def latest_tree_head(self, request: Request) -> JSONResponse:
        """``GET /v1/audit/tree-heads/latest``: the signed head of largest size."""
        await _require_reader(request, self.ctx)
        head = await self._run(self.ctx.audit.latest_tree_head)
        if head is None:
            raise NotFoundError("No tree head has been signed yet.")
        return JSONResponse(head.to_dict(), headers=_NO_STORE)

    async def sign_tree_head(self, request: Request) -> JSONResponse:
        """``POST /v1/audit/tree-heads``: sign a head over every event now."""
        await require_admin(request, self.ctx)
        head = await self.ctx.audit.sign_tree_head()
        return JSONResponse(head.to_dict(), status_code=201, headers=_NO_STORE)
