"""Errors raised by the audit package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class AuditError(AgentIAMError):
    """Base class of the audit package's errors."""


class AuditEventError(AuditError):
    """An audit event breaks the schema or carries a value that looks like a secret."""


class CanonicalizationError(AuditError):
    """A value cannot be encoded as RFC 8785 canonical JSON."""


class ProofError(AuditError):
    """A Merkle proof request or a proof is malformed (wrong sizes or hash lengths)."""


class TreeHeadError(AuditError):
    """A signed tree head is invalid, unsigned by a known key or inconsistent."""
