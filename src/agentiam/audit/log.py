"""The append-only audit log: sequence numbers, hash chain, Merkle tree and heads.

Every event becomes a row of ``audit_events`` with ``seq`` (its leaf index, from
0), its RFC 8785 bytes, ``leaf_hash = SHA-256(0x00 || bytes)`` and
``chain_hash = SHA-256(previous chain_hash || leaf_hash)``.

The head of the log (the last seq and chain hash) is read through the caller's
connection, inside the caller's transaction.  The group-commit writer runs one
unit at a time, each in a SAVEPOINT, so appends are linear.  When a unit or a
whole batch rolls back, its rows and therefore the head roll back with it, and
the next append continues from the last committed event.  The in-memory copy
(``committed_size``) is only updated after a commit is known and never decides a
sequence number.  If two processes append at once, the primary key on ``seq``
makes one of them fail, so the chain cannot fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.errors import AuditError, AuditEventError, ProofError, TreeHeadError
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import consistency_proof, inclusion_proof, leaf_hash
from agentiam.audit.tables import (
    audit_event_actors,
    audit_event_tasks,
    audit_events,
    tree_heads,
)
from agentiam.audit.tree import SubtreeHashes
from agentiam.audit.tree_head import TreeHead, sign_tree_head, verify_tree_head
from agentiam.errors import AgentIAMError, TemporarilyUnavailableError

if TYPE_CHECKING:
    from agentiam.config import Settings
    from agentiam.keys import KeyRing
    from agentiam.storage.writer import GroupCommitWriter

log = logging.getLogger("agentiam.audit.log")

DEFAULT_TREE_HEAD_EVERY = 1000
DEFAULT_TREE_HEAD_INTERVAL_MS = 10_000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its position, hashes, canonical bytes and decoded form."""

    seq: int
    leaf_hash: bytes
    chain_hash: bytes
    canonical: bytes
    event: AuditEvent


class AuditLog:
    """The append-only audit log of one server (see the module docstring).

    Args:
        engine: the database engine; reads use their own connections.
        writer: the group-commit writer that ``record`` submits to.
        settings: the server settings; ``issuer`` names the signer of tree heads.
        clock: returns Unix seconds; stamps events that have no ``time``.
        keyring: signs tree heads with its active key.  Without it ``record``
            still works but signing a tree head raises ``TreeHeadError``.
        tree_head_every: sign a tree head after this many new events (0: never).
        tree_head_interval_ms: ``run_tree_heads`` signs a head this often when
            events were added since the last one.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        writer: GroupCommitWriter,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        keyring: KeyRing | None = None,
        tree_head_every: int = DEFAULT_TREE_HEAD_EVERY,
        tree_head_interval_ms: float = DEFAULT_TREE_HEAD_INTERVAL_MS,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._issuer = settings.issuer if settings is not None else ""
        self._clock = clock
        self.keyring = keyring
        self._tree_head_every = tree_head_every
        self._tree_head_interval = tree_head_interval_ms / 1000
        self._tree = SubtreeHashes(self._load_leaves)
        self._head_lock = asyncio.Lock()
        self._runner: asyncio.Task[None] | None = None
        self.committed_size = self.stored_size()
        latest = self.latest_tree_head()
        self._last_head_size = latest.size if latest is not None else 0

    # -- appending ---------------------------------------------------------------

    def record_in(self, conn: Connection, event: AuditEvent) -> int:
        """Append ``event`` inside the caller's unit of work and return its seq.

        The event is kept only if the caller's transaction commits.

        Raises:
            AuditEventError: the event cannot be encoded canonically.
            TemporarilyUnavailableError: the database write failed, so the caller's
                unit fails too and nothing of it is kept.
        """
        stamped = event.stamped(self._clock())
        canonical = stamped.canonical()
        leaf = leaf_hash(canonical)

        try:
            return self._append(conn, stamped, canonical, leaf)
        except SQLAlchemyError as err:
            log.error(
                "Failed to append audit event",
                extra={"event_type": event.type, "error": repr(err)},
            )
            raise TemporarilyUnavailableError(
                reason=f"audit append failed: {err!r}"
            ) from err

    def _append(
        self, conn: Connection, event: AuditEvent, canonical: bytes, leaf: bytes
    ) -> int:
        last = conn.execute(
            select(audit_events.c.seq, audit_events.c.chain_hash)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).first()
        seq = 0 if last is None else last.seq + 1
        previous = GENESIS_CHAIN_HASH if last is None else bytes(last.chain_hash)

        conn.execute(
            insert(audit_events).values(
                seq=seq,
                time=event.time,
                type=event.type,
                decision=event.decision,
                human=event.human,
                grant_id=event.grant_id,
                agent=event.actors[0] if event.actors else None,
                task_id=event.task_id,
                leaf_hash=leaf,
                chain_hash=next_chain_hash(previous, leaf),
                canonical=canonical,
            )
        )
        self._insert_index_rows(conn, seq, event)
        return seq

    def _insert_index_rows(self, conn: Connection, seq: int, event: AuditEvent) -> None:
        tasks = {task: depth for depth, task in enumerate(event.task_path)}
        if tasks:
            conn.execute(
                insert(audit_event_tasks),
                [
                    {"seq": seq, "task_id": task, "depth": depth}
                    for task, depth in tasks.items()
                ],
            )
        actors = dict.fromkeys(event.actors)
        if actors:
            conn.execute(
                insert(audit_event_actors),
                [{"seq": seq, "actor": actor} for actor in actors],
            )

    async def record(self, event: AuditEvent) -> int:
        """Append ``event`` in its own unit of work; return its seq after the commit.

        Raises:
            AuditEventError: the event cannot be encoded canonically.
            TemporarilyUnavailableError: the event could not be committed.
        """
        stamped = event.stamped(self._clock())
        try:
            seq = await self._writer.submit(lambda conn: self.record_in(conn, stamped))
        except (AuditEventError, TemporarilyUnavailableError):
            raise
        except (AgentIAMError, SQLAlchemyError, RuntimeError) as err:
            # A closed or stopped writer must not let the caller go on unaudited.
            raise TemporarilyUnavailableError(
                reason=f"audit event not committed: {err!r}"
            ) from err

        self.note_committed(seq + 1)
        await self._maybe_sign_tree_head()
        return seq

    def record_sync(self, event: AuditEvent) -> int:
        """Append ``event`` from synchronous code (the CLI) and return its seq."""
        stamped = event.stamped(self._clock())
        try:
            seq = self._writer.run_sync(lambda conn: self.record_in(conn, stamped))
        except (AuditEventError, TemporarilyUnavailableError):
            raise
        except (AgentIAMError, SQLAlchemyError, RuntimeError) as err:
            raise TemporarilyUnavailableError(
                reason=f"audit event not committed: {err!r}"
            ) from err
        self.note_committed(seq + 1)
        return seq

    def note_committed(self, size: int) -> None:
        """Record that the log is known to hold at least ``size`` committed events."""
        self.committed_size = max(self.committed_size, size)

    # -- reading -----------------------------------------------------------------

    def stored_size(self) -> int:
        """Return the number of committed events (the largest seq plus one)."""
        with self._engine.connect() as conn:
            last = conn.execute(select(func.max(audit_events.c.seq))).scalar()
        return 0 if last is None else int(last) + 1

    def get(self, seq: int) -> StoredEvent | None:
        """Return the committed event at ``seq``, or ``None``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(audit_events).where(audit_events.c.seq == seq)
            ).first()
        return None if row is None else stored_event_from_row(row)

    def _load_leaves(self, start: int, end: int) -> Sequence[bytes]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(audit_events.c.leaf_hash)
                .where(audit_events.c.seq >= start, audit_events.c.seq < end)
                .order_by(audit_events.c.seq)
            ).all()
        return [bytes(row.leaf_hash) for row in rows]

    # -- Merkle tree -------------------------------------------------------------

    def _check_size(self, size: int) -> int:
        stored = self.stored_size()
        self.note_committed(stored)
        if size > stored:
            raise ProofError(
                f"Tree size {size} is larger than the log, which has {stored} events."
            )
        return stored

    def root(self, size: int) -> bytes:
        """Return the Merkle tree hash of the first ``size`` events."""
        self._check_size(size)
        return self._tree.subtree_root(0, size)

    def inclusion_proof(self, seq: int, tree_size: int) -> list[bytes]:
        """Return the audit path of event ``seq`` in the tree of ``tree_size`` events.

        Raises:
            ProofError: ``seq`` is not below ``tree_size`` or the size is larger
                than the log.
        """
        self._check_size(tree_size)
        return inclusion_proof(seq, tree_size, self._tree.subtree_root)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the proof that the tree of ``first`` events is a prefix of ``second``.

        Raises:
            ProofError: ``first`` is 0, ``first > second`` or ``second`` is larger
                than the log.
        """
        self._check_size(second)
        return consistency_proof(first, second, self._tree.subtree_root)

    # -- signed tree heads -------------------------------------------------------

    def latest_tree_head(self) -> TreeHead | None:
        """Return the stored tree head with the largest size, or ``None``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(tree_heads)
                .order_by(tree_heads.c.size.desc(), tree_heads.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else tree_head_from_row(row)

    def tree_heads(self) -> list[TreeHead]:
        """Return every stored tree head, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(tree_heads).order_by(tree_heads.c.id)).all()
        return [tree_head_from_row(row) for row in rows]

    def _sign_current(self) -> TreeHead:
        if self.keyring is None:
            raise TreeHeadError(
                "No key ring was given to the audit log, so it cannot sign tree heads."
            )
        size = self.stored_size()
        root = self._tree.subtree_root(0, size)
        return sign_tree_head(
            size, root, self._clock(), self.keyring.active(), issuer=self._issuer
        )

    def _store_head(self, conn: Connection, head: TreeHead) -> TreeHead:
        conn.execute(
            insert(tree_heads).values(
                size=head.size,
                root=head.root,
                timestamp=head.timestamp,
                kid=head.kid,
                signature=head.signature,
                version=head.version,
            )
        )
        return head

    async def sign_tree_head(self) -> TreeHead:
        """Sign and store a tree head over every committed event now.

        Raises:
            TreeHeadError: there is no key ring.
            TemporarilyUnavailableError: the head could not be stored.
        """
        async with self._head_lock:
            head = await asyncio.to_thread(self._sign_current)
            try:
                await self._writer.submit(lambda conn: self._store_head(conn, head))
            except (AgentIAMError, SQLAlchemyError, RuntimeError) as err:
                if isinstance(err, TemporarilyUnavailableError):
                    raise
                raise TemporarilyUnavailableError(
                    reason=f"tree head not stored: {err!r}"
                ) from err
            self._last_head_size = max(self._last_head_size, head.size)
        log.info("Signed audit tree head", extra={"tree_size": head.size})
        return head

    def sign_tree_head_sync(self) -> TreeHead:
        """Sign and store a tree head from synchronous code (the CLI)."""
        head = self._sign_current()
        self._writer.run_sync(lambda conn: self._store_head(conn, head))
        self._last_head_size = max(self._last_head_size, head.size)
        return head

    async def _maybe_sign_tree_head(self) -> None:
        if self._tree_head_every <= 0 or self.keyring is None:
            return
        if self.committed_size - self._last_head_size < self._tree_head_every:
            return
        if self._head_lock.locked():
            return
        try:
            await self.sign_tree_head()
        except AgentIAMError as err:
            # The event itself is committed, so the caller's request succeeds and
            # the next event or the periodic task retries the head.
            log.warning("Failed to sign audit tree head", extra={"error": repr(err)})

    async def run_tree_heads(self) -> None:
        """Sign a tree head every ``tree_head_interval_ms`` when events were added.

        Run it as a background task for the life of the server; cancel it to stop.
        """
        while True:
            await asyncio.sleep(self._tree_head_interval)
            self.note_committed(await asyncio.to_thread(self.stored_size))
            if self.keyring is None or self.committed_size <= self._last_head_size:
                continue
            try:
                await self.sign_tree_head()
            except AgentIAMError as err:
                log.warning(
                    "Failed to sign audit tree head", extra={"error": repr(err)}
                )

    async def start(self) -> None:
        """Start the periodic tree-head task (the app's lifespan calls this)."""
        if self._runner is None and self.keyring is not None:
            self._runner = asyncio.create_task(
                self.run_tree_heads(), name="audit-tree-heads"
            )

    async def close(self) -> None:
        """Stop the periodic task, then sign a last head over any new events."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        if self.keyring is None:
            return
        self.note_committed(await asyncio.to_thread(self.stored_size))
        if self.committed_size > self._last_head_size:
            try:
                await self.sign_tree_head()
            except AgentIAMError as err:
                log.warning(
                    "Failed to sign audit tree head", extra={"error": repr(err)}
                )

    def verify_tree_head(self, signature: str) -> TreeHead:
        """Verify a tree head JWS against the key ring's keys and this issuer."""
        if self.keyring is None:
            raise TreeHeadError("No key ring was given to the audit log.")
        return verify_tree_head(signature, self.keyring.lookup, issuer=self._issuer)


def stored_event_from_row(row: Any) -> StoredEvent:
    """Decode an ``audit_events`` row.

    Raises:
        AuditError: the stored bytes are not a valid event of a known version.
    """
    canonical = bytes(row.canonical)
    try:
        data = json.loads(canonical)
        event = AuditEvent.from_dict(data)
    except (ValueError, AuditEventError) as err:
        raise AuditError(f"Audit event {row.seq} cannot be decoded: {err}") from err
    return StoredEvent(
        seq=int(row.seq),
        leaf_hash=bytes(row.leaf_hash),
        chain_hash=bytes(row.chain_hash),
        canonical=canonical,
        event=event,
    )


def tree_head_from_row(row: Any) -> TreeHead:
    """Build a ``TreeHead`` from an ``audit_tree_heads`` row (signature unchecked)."""
    return TreeHead(
        size=int(row.size),
        root=bytes(row.root),
        timestamp=float(row.timestamp),
        kid=row.kid,
        signature=row.signature,
        version=int(row.version),
    )
