"""The root of every error agentiam raises, and the OAuth error family."""

from __future__ import annotations


class AgentIAMError(Exception):
    """Base class of every error raised by agentiam."""


class OAuthError(AgentIAMError):
    """An error that reaches the wire in the RFC 6749 section 5.2 shape.

    Subclasses fix ``error`` (the RFC code), ``status`` and ``description``.  The
    per-call ``hint`` is safe to show to the client and is appended to the
    description; ``reason`` is internal and goes only to the log and the audit event.
    """

    error = "invalid_request"
    status = 400
    description = "The request is invalid."

    def __init__(self, hint: str | None = None, *, reason: str | None = None) -> None:
        self.hint = hint
        self.reason = reason or hint
        super().__init__(self.wire_description)

    @property
    def wire_description(self) -> str:
        """Return the description sent to the client: fixed text plus the hint."""
        if self.hint:
            return f"{self.description} {_encodable(self.hint)}"
        return self.description

    def to_dict(self) -> dict[str, str]:
        """Return the JSON error body."""
        return {"error": self.error, "error_description": self.wire_description}


def _encodable(text: str) -> str:
    # A hint can quote a value with a lone surrogate, which UTF-8 cannot encode, so
    # the surrogate is written as a backslash escape and the response can be sent.
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidRequestError(OAuthError):
    """A parameter is missing, repeated, malformed or not allowed here."""

    error = "invalid_request"
    description = "The request is invalid."


class InvalidClientError(OAuthError):
    """Client authentication failed."""

    error = "invalid_client"
    status = 401
    description = "Client authentication failed."


class InvalidGrantError(OAuthError):
    """A grant, subject token or actor token is invalid, expired or revoked."""

    error = "invalid_grant"
    description = "The grant or token presented is invalid."


class InvalidScopeError(OAuthError):
    """The requested scope is invalid or wider than allowed."""

    error = "invalid_scope"
    description = "The requested scope is not allowed."


class InvalidTargetError(OAuthError):
    """The requested audience or resource is not allowed (RFC 8707)."""

    error = "invalid_target"
    description = "The requested audience is not allowed."


class InvalidAuthorizationDetailsError(OAuthError):
    """The requested authorization_details are invalid or wider (RFC 9396)."""

    error = "invalid_authorization_details"
    description = "The requested authorization_details are not allowed."


class UnauthorizedClientError(OAuthError):
    """The client may not use this grant type or act in this way."""

    error = "unauthorized_client"
    description = "The client is not allowed to make this request."


class UnsupportedGrantTypeError(OAuthError):
    """The grant type is not supported."""

    error = "unsupported_grant_type"
    description = "The grant type is not supported."


class UnsupportedTokenTypeError(OAuthError):
    """The token type is not supported (RFC 8693, RFC 7009)."""

    error = "unsupported_token_type"
    description = "The token type is not supported."


class InvalidDPoPProofError(OAuthError):
    """The DPoP proof is missing, invalid or does not match the key (RFC 9449)."""

    error = "invalid_dpop_proof"
    description = "The DPoP proof is invalid."


class AccessDeniedError(OAuthError):
    """The human or the policy denied the request."""

    error = "access_denied"
    status = 403
    description = "Access was denied."


class InvalidTokenError(OAuthError):
    """The bearer or DPoP token presented to a protected endpoint is invalid."""

    error = "invalid_token"
    status = 401
    description = "The access token is invalid."


class InsufficientScopeError(OAuthError):
    """The token is valid but lacks the authority for this request (RFC 6750)."""

    error = "insufficient_scope"
    status = 403
    description = "The access token lacks the authority for this request."


class NotFoundError(OAuthError):
    """The object does not exist or the caller may not see it (one message for both)."""

    error = "not_found"
    status = 404
    description = "The object was not found."

    @property
    def wire_description(self) -> str:
        """Return the hint alone when there is one, else the fixed text.

        A hint names the object in the form "<Thing> '<id>' was not found.", so
        the fixed text in front of it would repeat it.
        """
        if self.hint:
            return _encodable(self.hint)
        return self.description


class TemporarilyUnavailableError(OAuthError):
    """The server cannot serve the request now, e.g. the audit log cannot be written."""

    error = "temporarily_unavailable"
    status = 503
    description = "The server is temporarily unable to handle the request."
