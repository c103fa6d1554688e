"""The cursors of the audit push sinks: the last event each sink delivered.

A sink advances its row only after the endpoint acknowledged a batch, so a
restarted sink resends at most the batch that was in flight.  ``last_seq`` is -1
before the first delivery; ``updated_at`` is Unix seconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, String, Table

from agentiam.storage.metadata import metadata

audit_sink_cursors = Table(
    "audit_sink_cursors",
    metadata,
    Column("sink", String(64), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)
