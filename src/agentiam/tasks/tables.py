"""The tasks table: the task tree, one row per task.

Times are Unix seconds as floats. ``path`` is the JSON array of task ids from the root
to this task (root first), the same list that tokens carry as ``task.path``; scopes and
audiences are JSON arrays, sorted.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, String, Table, Text

from agentiam.storage.metadata import metadata

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("grant_id", String(64), ForeignKey("grants.id"), nullable=False),
    Column("parent_id", String(64), ForeignKey("tasks.id"), nullable=True),
    # The first id of path, kept as a column so that a subtree is found by index.
    Column("root_id", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    # The SPIFFE ID of the instance or the user id that opened the task.
    Column("opened_by", String(256), nullable=False),
    Column("opened_at", Float, nullable=False),
    # One of open, closed, expired.
    Column("status", String(16), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("closed_by", String(256), nullable=True),
)

Index("ix_tasks_root_id", tasks.c.root_id)
Index("ix_tasks_grant_id", tasks.c.grant_id)
Index("ix_tasks_status_expires_at", tasks.c.status, tasks.c.expires_at)
