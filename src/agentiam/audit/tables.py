"""The audit tables: the append-only event log, its index tables and tree heads.

``audit_events.seq`` is the leaf index in the Merkle tree, starting at 0, so the
tree of size ``n`` contains the events with ``seq < n``.  Times are Unix seconds.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from agentiam.storage.metadata import metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", Float, nullable=False),
    Column("type", String(64), nullable=False),
    Column("decision", String(8), nullable=False),
    Column("human", String(256), nullable=True),
    Column("grant_id", String(256), nullable=True),
    # The acting instance (first actor) and the task acted in. Queries use the
    # index tables below, so these two columns have no index of their own.
    Column("agent", String(512), nullable=True),
    Column("task_id", String(256), nullable=True),
    # SHA-256(0x00 || canonical) and SHA-256(previous chain_hash || leaf_hash).
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    # The RFC 8785 encoding of the event: the bytes that were hashed.
    Column("canonical", LargeBinary, nullable=False),
)

Index("ix_audit_events_time", audit_events.c.time)
# Queries compare these two columns with a value and never look for NULL, so
# the indexes leave out events without a human or a grant, and appending such
# an event writes one index entry less.
Index(
    "ix_audit_events_human",
    audit_events.c.human,
    sqlite_where=audit_events.c.human.isnot(None),
    postgresql_where=audit_events.c.human.isnot(None),
)
Index(
    "ix_audit_events_grant_id",
    audit_events.c.grant_id,
    sqlite_where=audit_events.c.grant_id.isnot(None),
    postgresql_where=audit_events.c.grant_id.isnot(None),
)

# One row per (event, task on its task path), so the events of a task subtree are
# the rows whose task_id is the subtree's root.
audit_event_tasks = Table(
    "audit_event_tasks",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("task_id", String(256), primary_key=True),
    Column("depth", Integer, nullable=False),
)

Index("ix_audit_event_tasks_task_id", audit_event_tasks.c.task_id)

# One row per (event, actor in its chain), so an agent instance finds the events
# it acted in at any position of the chain.
audit_event_actors = Table(
    "audit_event_actors",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("actor", String(512), primary_key=True),
)

Index("ix_audit_event_actors_actor", audit_event_actors.c.actor)

# The hash of each complete, aligned subtree of 2**level leaves, level >= 6, so
# proofs read O(log n) rows (see ``agentiam.audit.tree``).  Rows are written in the
# unit of work that appends the leaf completing the subtree.
audit_tree_nodes = Table(
    "audit_tree_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

tree_heads = Table(
    "audit_tree_heads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("kid", String(64), nullable=False),
    # The compact JWS (typ tree-head+jwt) over size, root and timestamp.
    Column("signature", Text, nullable=False),
    Column("version", Integer, nullable=False),
    sqlite_autoincrement=True,
)

Index("ix_audit_tree_heads_size", tree_heads.c.size)

# The decision ids each resource server has sent, so a batch retried after a lost
# response is not appended twice.
audit_decision_ids = Table(
    "audit_decision_ids",
    metadata,
    Column("client_id", String(256), primary_key=True),
    Column("decision_id", String(256), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# The audit HMAC key that pseudonymizes secret-like identifiers in events (see
# ``agentiam.audit.pseudonyms``): ``key`` is ``nonce || AES-256-GCM ciphertext``
# of 32 random bytes under the key-encryption key.
audit_hmac_keys = Table(
    "audit_hmac_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)
