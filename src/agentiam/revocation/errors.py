"""Errors of the revocation package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class RevocationError(AgentIAMError):
    """Base class of the revocation package's errors."""


class UnknownRevocationKindError(RevocationError):
    """The kind of a revocation entry is not one of the known kinds."""
