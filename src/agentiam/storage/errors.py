"""Errors of the storage package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class StorageError(AgentIAMError):
    """The database could not be opened, migrated or written."""


class WriterClosedError(StorageError):
    """A unit of work was submitted to a group-commit writer that is not running."""
