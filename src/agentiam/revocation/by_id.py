"""Revocation of one id of any kind, for the admin API, the human's API and the CLI.

``revoke_id_in`` puts ``(kind, id)`` into the revocation set with an expiry no
earlier than the latest ``exp`` a token it kills can have. It also marks a grant
revoked in the grants table or closes a task with its subtree. It writes one
``<kind>.revoked`` audit event (``task.closed`` for a task), all in the caller's
unit of work. Revoking an id twice keeps one entry and writes a second event
with ``already_revoked`` set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from agentiam.audit import AuditEvent
from agentiam.delegation.grants import GrantStore
from agentiam.errors import InvalidRequestError, NotFoundError
from agentiam.revocation.revocation_set import KINDS
from agentiam.spiffe import SPIFFEIDError, parse_agent_spiffe_id
from agentiam.tasks.store import task_store

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext
    from agentiam.config import Settings

# Grant and task ids are a prefix and random base64url or hex, in columns of 64.
_GRANT_ID = re.compile(r"^grt_[A-Za-z0-9_-]{1,60}$")
_TASK_ID = re.compile(r"^tsk_[A-Za-z0-9_-]{1,60}$")
# Session ids and jtis are ``secrets.token_urlsafe`` values.
_OPAQUE_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

_MAX_SHOWN = 80


@dataclass(frozen=True, slots=True)
class Revoked:
    """The outcome of one revocation, as the API and the CLI report it."""

    kind: str
    id: str
    expires_at: float
    already_revoked: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of the outcome."""
        return {
            "kind": self.kind,
            "id": self.id,
            "expires_at": self.expires_at,
            "already_revoked": self.already_revoked,
        }


def verify_target(kind: object, target: object, settings: Settings) -> tuple[str, str]:
    """Check that ``kind`` is a revocation kind and ``target`` a well-formed id of it.

    Returns:
        The kind and the id, typed as strings.

    Raises:
        InvalidRequestError: the kind is unknown or the id is malformed, naming the
            value.
    """
    for name, value in (("kind", kind), ("id", target)):
        if value is None:
            raise InvalidRequestError(f"The member {name!r} is missing.")

    if not isinstance(kind, str) or kind not in KINDS:
        quoted = str(kind)[:_MAX_SHOWN]
        raise InvalidRequestError(
            f"The kind {quoted!r} is not one of {', '.join(sorted(KINDS))}."
        )
    if not isinstance(target, str) or not _is_well_formed(kind, target, settings):
        quoted = str(target)[:_MAX_SHOWN]
        raise InvalidRequestError(f"The id {quoted!r} is not a valid {kind} id.")
    return kind, target


def _is_well_formed(kind: str, target: str, settings: Settings) -> bool:
    if kind == "grant":
        return _GRANT_ID.match(target) is not None
    if kind == "task":
        return _TASK_ID.match(target) is not None
    if kind == "instance":
        try:
            parsed, _agent_class, _instance = parse_agent_spiffe_id(target)
        except SPIFFEIDError:
            return False
        return str(parsed.trust_domain) == settings.trust_domain
    return _OPAQUE_ID.match(target) is not None


def entry_expiry(kind: str, settings: Settings, now: float) -> float:
    """Return the latest ``exp`` that a token killed by an entry of ``kind`` can have.

    Every such token was issued before ``now``, so its ``exp`` is at most ``now``
    plus the longest lifetime of the token kinds the entry kills, plus the leeway
    that verifiers grant.
    """
    if kind == "session":
        lifetime = settings.session_ttl
    else:
        # Grants, tasks, instances and jtis kill access tokens and child SVIDs.
        lifetime = max(settings.max_access_token_ttl, settings.svid_ttl)
    return now + lifetime + settings.leeway


def revoke_id_in(
    conn: Connection,
    ctx: ServerContext,
    *,
    kind: str,
    target: str,
    revoked_by: str,
    now: float,
    reason: str | None = None,
) -> Revoked:
    """Revoke ``target`` of ``kind`` inside a unit of work and record the event.

    Call ``verify_target`` first.  ``reason`` goes into the audit event.

    Raises:
        NotFoundError: ``kind`` is grant or task and no such row exists.
    """
    expires_at = entry_expiry(kind, ctx.settings, now)
    already = ctx.revocations.is_revoked(kind, target)
    event_fields: dict[str, Any] = {}

    if kind == "grant":
        event_fields = _revoke_grant_in(conn, ctx, target, now)
        already = already or bool(event_fields.pop("already"))
    elif kind == "task":
        event_fields = _close_task_in(conn, ctx, target, revoked_by, now)
        already = already or bool(event_fields.pop("already"))

    ctx.revocations.revoke_in(conn, kind, target, expires_at)
    ctx.audit.record_in(
        conn,
        _revoked_event(
            kind, target, revoked_by, expires_at, already, event_fields, reason
        ),
    )
    return Revoked(kind, target, expires_at, already)


def revoke_user_grants_in(
    conn: Connection,
    ctx: ServerContext,
    *,
    user_id: str,
    revoked_by: str,
    now: float,
    reason: str,
) -> list[Revoked]:
    """Revoke every active grant that ``user_id`` approved, in the caller's unit.

    Each grant goes through ``revoke_id_in``, so each gets a revocation entry of
    kind ``grant`` and a ``grant.revoked`` event with ``reason``.
    """
    grant_ids = GrantStore(ctx.engine).active_ids_for_user_in(conn, user_id, now=now)
    return [
        revoke_id_in(
            conn,
            ctx,
            kind="grant",
            target=grant_id,
            revoked_by=revoked_by,
            now=now,
            reason=reason,
        )
        for grant_id in grant_ids
    ]


def _revoke_grant_in(
    conn: Connection, ctx: ServerContext, grant_id: str, now: float
) -> dict[str, Any]:
    store = GrantStore(ctx.engine)
    grant = store.get_in(conn, grant_id)
    if grant is None:
        raise NotFoundError(f"Grant '{grant_id[:64]}' was not found.")

    changed = store.revoke_in(conn, grant_id, now=now)
    return {
        "already": not changed,
        "human": grant.user_id,
        "receipt_hash": grant.receipt_hash,
        "grant_id": grant.id,
    }


def _close_task_in(
    conn: Connection, ctx: ServerContext, task_id: str, revoked_by: str, now: float
) -> dict[str, Any]:
    store = task_store(ctx.engine, ctx.revocations)
    task = store.get_in(conn, task_id)
    if task is None:
        raise NotFoundError(f"Task '{task_id[:64]}' was not found.")

    closed = store.close_in(conn, task_id, closed_by=revoked_by, now=now)
    return {
        "already": not task.is_open(now),
        "grant_id": task.grant_id,
        "task_path": list(task.path),
        "closed": closed,
    }


def _revoked_event(
    kind: str,
    target: str,
    revoked_by: str,
    expires_at: float,
    already: bool,
    fields: dict[str, Any],
    reason: str | None,
) -> AuditEvent:
    details: dict[str, Any] = {
        "kind": kind,
        "id": target,
        "revoked_by": revoked_by,
        "expires_at": expires_at,
        "already_revoked": already,
    }
    if "closed" in fields:
        details["closed"] = fields["closed"]
    return AuditEvent(
        type="task.closed" if kind == "task" else f"{kind}.revoked",
        decision="none",
        outcome="revoked",
        reason=reason,
        human=fields.get("human"),
        receipt_hash=fields.get("receipt_hash"),
        grant_id=fields.get("grant_id"),
        actors=[target] if kind == "instance" else [],
        task_path=fields.get("task_path", []),
        details=details,
    )
