"""The revocation set: revoked ids held in memory, checked on every token use.

A token is dead when any id it carries is in the set (see ``kills``). The set is
loaded from the ``revocations`` table at start, updated when a transaction that adds
entries commits, and refreshed from the table periodically so that several server
nodes converge.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, func, insert, select, text

from agentiam.revocation.errors import UnknownRevocationKindError
from agentiam.revocation.tables import revocations

logger = logging.getLogger(__name__)

KINDS = frozenset({"grant", "task", "instance", "session", "token"})

# Verifiers accept an exp up to this many seconds in the past, so an entry stays in
# memory this long after its expires_at.
DROP_MARGIN = 60.0

# ``refresh`` runs every second or so; its scan for expired entries runs at most
# this often, because it walks every entry under the lock.
DROP_EVERY = 5.0

_PENDING_KEY = "agentiam.revocation.pending"


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One row of the revocation feed."""

    seq: int
    kind: str
    id: str
    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the feed's JSON shape of the entry."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "id": self.id,
            "expires_at": self.expires_at,
        }


def revoked_ids(claims: object) -> list[tuple[str, str]]:
    """Return every (kind, id) pair that would kill a token with these claims.

    Args:
        claims: an ``AccessTokenClaims``, ``SVIDClaims`` or ``SessionClaims`` (any
            object with ``to_dict()``) or the claim mapping itself.
    """
    payload = _claims_mapping(claims)
    pairs: list[tuple[str, str]] = []

    grant = payload.get("grant")
    if isinstance(grant, Mapping) and isinstance(grant.get("id"), str):
        pairs.append(("grant", grant["id"]))

    task = payload.get("task")
    if isinstance(task, Mapping):
        path = task.get("path")
        if isinstance(path, list):
            pairs.extend(("task", item) for item in path if isinstance(item, str))
        if isinstance(task.get("id"), str):
            pairs.append(("task", task["id"]))

    pairs.extend(("instance", sub) for sub in _instances(payload))

    if isinstance(payload.get("jti"), str):
        pairs.append(("token", payload["jti"]))
    derived = payload.get("derived_from")
    if isinstance(derived, list):
        pairs.extend(("token", item) for item in derived if isinstance(item, str))

    if isinstance(payload.get("sid"), str):
        pairs.append(("session", payload["sid"]))
    return pairs


def _claims_mapping(claims: object) -> Mapping[str, Any]:
    if isinstance(claims, Mapping):
        return claims
    to_dict = getattr(claims, "to_dict", None)
    if not callable(to_dict):
        raise TypeError(f"claims of type {type(claims).__name__!r} have no to_dict()")
    result = to_dict()
    if not isinstance(result, Mapping):
        raise TypeError("claims.to_dict() did not return a mapping")
    return result


def _instances(payload: Mapping[str, Any]) -> list[str]:
    """Return the agent instances a token speaks for: client, actors, SVID subject."""
    found: list[str] = []
    if isinstance(payload.get("client_id"), str):
        found.append(payload["client_id"])

    act = payload.get("act")
    depth = 0
    while isinstance(act, Mapping) and depth < 64:
        if isinstance(act.get("sub"), str):
            found.append(act["sub"])
        act = act.get("act")
        depth += 1

    # A JWT-SVID names its instance in sub and, for a sub-agent, its parent and
    # every instance above it in ancestors, so revoking any of them kills it.
    sub = payload.get("sub")
    if isinstance(sub, str) and sub.startswith("spiffe://"):
        found.append(sub)
    if isinstance(payload.get("parent"), str):
        found.append(payload["parent"])
    ancestors = payload.get("ancestors")
    if isinstance(ancestors, list):
        found.extend(item for item in ancestors[:64] if isinstance(item, str))
    return found


# Any 64-bit number: the key of the PostgreSQL advisory lock of ``_take_seq_lock``.
_SEQ_LOCK_KEY = 0x61676E7472657673


def _take_seq_lock(conn: Connection) -> None:
    """Make the rows of concurrent transactions commit in the order of their seq.

    Readers keep the highest seq they have read and ask only for rows above it. On
    PostgreSQL a transaction that took seq N can commit after one that took N + 1,
    and a reader that saw N + 1 in between would never read row N. The
    transaction-level advisory lock, held until commit, orders the writers. SQLite
    allows one writing transaction at a time, so its commits are in seq order
    already.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEQ_LOCK_KEY})


def _write_row(
    conn: Connection,
    kind: str,
    id: str,
    expires_at: float,
    now: float,
    *,
    replace: bool,
) -> None:
    # A later expiry replaces the row rather than updating it: the new row's seq
    # carries the change to readers that have already read past the old one.
    if replace:
        conn.execute(
            delete(revocations).where(
                revocations.c.kind == kind, revocations.c.id == id
            )
        )
    conn.execute(
        insert(revocations).values(
            kind=kind, id=id, expires_at=expires_at, created_at=now
        )
    )


class RevocationSet:
    """Revoked ids in memory, with their expiry, mirrored from the table.

    ``is_revoked`` and ``kills`` do no I/O. Entries written with ``revoke_in`` reach
    memory when their transaction commits. ``refresh`` reads rows with a seq above the
    highest seen, which picks up entries written by other nodes.
    """

    def __init__(
        self, engine: Engine | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._entries: dict[tuple[str, str], float] = {}
        self._seq = 0
        self._dropped_at = 0.0
        self._lock = threading.Lock()
        if engine is not None:
            event.listen(engine, "commit", self._on_commit)
            event.listen(engine, "rollback", self._on_rollback)
            event.listen(engine, "rollback_savepoint", self._on_rollback_savepoint)

    @property
    def seq(self) -> int:
        """The highest feed seq this set has loaded."""
        return self._seq

    def __len__(self) -> int:
        return len(self._entries)

    def is_revoked(self, kind: str, id: str) -> bool:
        """Return whether (kind, id) is in the set and not yet dropped."""
        expires_at = self._entries.get((kind, id))
        if expires_at is None:
            return False
        return expires_at + DROP_MARGIN >= self._clock()

    def kills(self, claims: object) -> str | None:
        """Return the first id whose entry kills a token with these claims, or None.

        The checked ids are ``grant.id``, every id of ``task.path``, ``client_id``,
        every ``act.sub``, an SVID's ``sub``, ``parent`` and every id of
        ``ancestors``, ``jti``, every jti of ``derived_from`` and a session's
        ``sid``.
        """
        if not self._entries:
            return None
        for kind, value in revoked_ids(claims):
            if self.is_revoked(kind, value):
                return value
        return None

    def revoke_in(
        self, conn: Connection, kind: str, id: str, expires_at: float
    ) -> None:
        """Insert an entry inside a unit of work; memory follows when it commits.

        Revoking an id that is already in the table keeps the later expiry.

        Raises:
            UnknownRevocationKindError: kind is not one of ``KINDS``.
        """
        if kind not in KINDS:
            raise UnknownRevocationKindError(
                f"Revocation kind {kind!r} is not one of {sorted(KINDS)}."
            )
        now = self._clock()
        _take_seq_lock(conn)
        existing = conn.execute(
            select(revocations.c.expires_at).where(
                revocations.c.kind == kind, revocations.c.id == id
            )
        ).scalar_one_or_none()
        if existing is None or existing < expires_at:
            _write_row(conn, kind, id, expires_at, now, replace=existing is not None)
        # Tagged with the savepoint so that a unit of work rolled back alone, to
        # its savepoint or with its whole transaction, does not reach memory.
        nested = conn.get_nested_transaction()
        savepoint = getattr(nested, "_savepoint", None) if nested else None
        pending = conn.info.setdefault(_PENDING_KEY, [])
        pending.append((savepoint, (kind, id, expires_at)))

    def add_committed(self, entries: Iterable[tuple[str, str, float]]) -> None:
        """Put entries that are already committed into memory."""
        with self._lock:
            for kind, value, expires_at in entries:
                previous = self._entries.get((kind, value), 0.0)
                self._entries[(kind, value)] = max(previous, expires_at)

    def load(self, conn: Connection | None = None) -> int:
        """Read every live row into memory and return how many there are."""
        self._entries.clear()
        self._seq = 0
        self.refresh(conn)
        return len(self._entries)

    def refresh(self, conn: Connection | None = None) -> int:
        """Read rows with a seq above the highest seen; return how many were new.

        Also drops entries whose expiry has passed, at most every ``DROP_EVERY``
        seconds.
        """
        if conn is None:
            engine = self._require_engine()
            with engine.connect() as own:
                return self.refresh(own)

        now = self._clock()
        rows = conn.execute(
            select(
                revocations.c.seq,
                revocations.c.kind,
                revocations.c.id,
                revocations.c.expires_at,
            )
            .where(revocations.c.seq > self._seq)
            .where(revocations.c.expires_at + DROP_MARGIN >= now)
            .order_by(revocations.c.seq)
        ).all()
        with self._lock:
            for seq, kind, value, expires_at in rows:
                previous = self._entries.get((kind, value), 0.0)
                self._entries[(kind, value)] = max(previous, expires_at)
                self._seq = max(self._seq, seq)
            if not rows:
                latest = conn.execute(select(func.max(revocations.c.seq))).scalar()
                self._seq = max(self._seq, latest or 0)
        if now - self._dropped_at >= DROP_EVERY:
            self._dropped_at = now
            self.drop_expired(now)
        return len(rows)

    def drop_expired(self, now: float) -> int:
        """Remove entries from memory whose expiry has passed; return how many."""
        with self._lock:
            dead = [
                key
                for key, expires_at in self._entries.items()
                if expires_at + DROP_MARGIN < now
            ]
            for key in dead:
                del self._entries[key]
        return len(dead)

    def purge_in(self, conn: Connection, now: float) -> int:
        """Delete rows whose expiry has passed; return how many were deleted."""
        result = conn.execute(
            delete(revocations).where(revocations.c.expires_at + DROP_MARGIN < now)
        )
        return int(result.rowcount or 0)

    def feed(
        self, since: int, *, conn: Connection | None = None
    ) -> tuple[int, list[RevocationEntry]]:
        """Return the latest seq and the live rows with a seq above ``since``."""
        if conn is None:
            engine = self._require_engine()
            with engine.connect() as own:
                return self.feed(since, conn=own)

        now = self._clock()
        latest = conn.execute(select(func.max(revocations.c.seq))).scalar() or 0
        rows = conn.execute(
            select(
                revocations.c.seq,
                revocations.c.kind,
                revocations.c.id,
                revocations.c.expires_at,
            )
            .where(revocations.c.seq > since)
            .where(revocations.c.expires_at + DROP_MARGIN >= now)
            .order_by(revocations.c.seq)
        ).all()
        entries = [
            RevocationEntry(seq=row[0], kind=row[1], id=row[2], expires_at=row[3])
            for row in rows
        ]
        return int(latest), entries

    async def run_refresher(self, interval: float) -> None:
        """Refresh from the table every ``interval`` seconds until cancelled.

        NOTE: with PostgreSQL, a LISTEN on a revocation channel (NOTIFY sent by
        revoke_in) would go here, so that nodes converge without waiting for the poll.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                logger.exception("Failed to refresh the revocation set")

    def _require_engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("RevocationSet has no engine; pass a connection")
        return self._engine

    def _on_commit(self, conn: Connection) -> None:
        # The commit event fires just before the DBAPI commit. If that commit fails,
        # this node kills the ids until restart although no row exists: fail closed.
        pending = conn.info.pop(_PENDING_KEY, None)
        if pending:
            self.add_committed(entry for _savepoint, entry in pending)

    def _on_rollback(self, conn: Connection) -> None:
        conn.info.pop(_PENDING_KEY, None)

    def _on_rollback_savepoint(
        self, conn: Connection, name: str | None, _context: object
    ) -> None:
        pending = conn.info.get(_PENDING_KEY)
        if pending:
            pending[:] = [item for item in pending if item[0] != name]
