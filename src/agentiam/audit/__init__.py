"""Audit events, their canonical encoding and the append-only, verifiable log.

``events``, ``_rfc8785`` and ``merkle`` import only the standard library, so the
agent SDK can verify inclusion and consistency proofs without the server
packages.  ``AuditLog`` (in ``agentiam.audit.log``) needs the server packages and
is imported lazily on first access.

No token, secret or private key enters the log.  Identifiers that work as a bearer
secret or find one (``auth_req_id``, join-token and client-secret hashes, session
``sid``, DPoP proof ``jti``) are recorded only as keyed HMAC pseudonyms from
``AuditLog.pseudonym``; ``agentiam.audit.pseudonyms`` lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentiam.audit.events import AuditEvent

if TYPE_CHECKING:
    from agentiam.audit.log import AuditLog

__all__ = ["AuditEvent", "AuditLog"]


def __getattr__(name: str) -> Any:
    """Import ``AuditLog`` on first use, keeping this package free of server imports."""
    if name == "AuditLog":
        from agentiam.audit.log import AuditLog

        return AuditLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
