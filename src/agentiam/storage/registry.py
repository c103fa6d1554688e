"""Import every package's ``tables`` module so the shared metadata is complete.

Alembic autogenerate and the start-up schema check need all tables on
``agentiam.storage.metadata.metadata``; importing a module declares its tables.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from agentiam.storage.metadata import metadata

TABLE_MODULES: tuple[str, ...] = (
    "agentiam.keys.tables",
    "agentiam.identity.tables",
    "agentiam.approvals.tables",
    "agentiam.delegation.tables",
    "agentiam.tasks.tables",
    "agentiam.revocation.tables",
    "agentiam.audit.tables",
    "agentiam.audit.siem.tables",
)


def load_all_tables() -> MetaData:
    """Import every module in ``TABLE_MODULES`` and return the shared metadata.

    A missing module raises ``ImportError``, so a build without one of the packages
    fails at start instead of running with part of the schema.
    """
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata
