"""Errors of the storage package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class StorageError(AgentIAMError):
    """The database could not be opened, migrated or written."""


class WriterClosedError(StorageError):
    """A unit of work was submitted to a group-commit writer that is not running."""


class NulCharacterError(AgentIAMError, ValueError):
    """A statement parameter contains U+0000, which PostgreSQL text cannot store.

    SQLite stores and compares such strings, so only PostgreSQL engines raise it.
    The HTTP error mapper turns it into 400 ``invalid_request``.

    NOTE: on SQLite the same request gets the outcome of its lookup instead, such
    as 404 for an unknown id, so the status of such a request depends on the
    database.
    """
