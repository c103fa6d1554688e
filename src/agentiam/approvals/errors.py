"""Errors of the approvals package, including the OIDC CIBA error codes."""

from __future__ import annotations

from agentiam.errors import AgentIAMError, OAuthError


class ApprovalError(AgentIAMError):
    """Base class of the approvals package's errors that carry no wire code."""


class UnknownUserIdError(OAuthError):
    """The login_hint names no enabled user (CIBA core 1.0 section 13)."""

    error = "unknown_user_id"
    description = "The login_hint does not name a known user."


class AuthorizationPendingError(OAuthError):
    """The human has not decided yet (CIBA core 1.0 section 11)."""

    error = "authorization_pending"
    description = "The authorization request is still pending."


class SlowDownError(OAuthError):
    """The client polled faster than the interval (CIBA core 1.0 section 11)."""

    error = "slow_down"
    description = "The client polled too fast; the interval was increased by 5 s."


class ExpiredTokenError(OAuthError):
    """The auth_req_id expired before a decision (CIBA core 1.0 section 11)."""

    error = "expired_token"
    description = "The auth_req_id has expired."


class CIBAAccessDeniedError(OAuthError):
    """The human denied the request; sent by the token endpoint with status 400."""

    error = "access_denied"
    description = "The user denied the authorization request."


class ApprovalDecidedError(OAuthError):
    """The request was already approved, denied or expired and cannot be decided."""

    error = "invalid_request"
    status = 409
    description = "The authorization request has already been decided or expired."
