"""Errors of the enforcement middleware."""

from __future__ import annotations

from agentiam.errors import AgentIAMError, InsufficientScopeError


class EnforcementError(AgentIAMError):
    """Base class of the errors raised by ``agentiam.enforce``."""


class ForbiddenError(InsufficientScopeError, EnforcementError):
    """The token is valid but does not authorize this request.

    Raised by ``authorize_detail`` inside a handler; the middleware answers 403
    ``insufficient_scope`` with the hint as the description and records the reason.
    """

    description = "The access token does not authorize this request."


class JWKSError(EnforcementError):
    """The server's metadata or JWKS could not be fetched or is invalid."""


class RevocationFeedError(EnforcementError):
    """The revocation feed could not be fetched or is invalid."""
