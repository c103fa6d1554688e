"""Errors raised by the agent SDK."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class ClientError(AgentIAMError):
    """Base class of every error the agent SDK raises."""


class ProtocolError(ClientError):
    """The server's response does not have the expected shape."""


class ServerError(ClientError):
    """The server rejected a request with an RFC 6749 section 5.2 error.

    Attributes:
        error: the RFC error code, e.g. ``invalid_grant``.
        description: the server's ``error_description``, or an empty string.
        status: the HTTP status of the response.
    """

    def __init__(self, error: str, description: str, status: int) -> None:
        self.error = error
        self.description = description
        self.status = status
        text = f"The server returned error '{error}' (HTTP {status})"
        if description:
            text = f"{text}: {description}"
        super().__init__(text)


class InvalidGrantError(ServerError):
    """The grant, subject token or actor token was rejected (``invalid_grant``)."""


class InvalidScopeError(ServerError):
    """The requested scope is not allowed (``invalid_scope``)."""


class InvalidTargetError(ServerError):
    """The requested audience is not allowed (``invalid_target``)."""


class InvalidDPoPProofError(ServerError):
    """The server rejected the DPoP proof (``invalid_dpop_proof``)."""


class InvalidTokenError(ServerError):
    """The server rejected the presented token (``invalid_token``)."""


class AccessDeniedError(ServerError):
    """The human or the policy denied the request (``access_denied``)."""


class ExpiredTokenError(ServerError):
    """The CIBA request expired before the human decided (``expired_token``)."""


class TemporarilyUnavailableError(ServerError):
    """The server cannot serve the request now (``temporarily_unavailable``)."""


_ERRORS_BY_CODE: dict[str, type[ServerError]] = {
    "invalid_grant": InvalidGrantError,
    "invalid_scope": InvalidScopeError,
    "invalid_target": InvalidTargetError,
    "invalid_dpop_proof": InvalidDPoPProofError,
    "invalid_token": InvalidTokenError,
    "access_denied": AccessDeniedError,
    "expired_token": ExpiredTokenError,
    "temporarily_unavailable": TemporarilyUnavailableError,
}


def server_error(error: str, description: str, status: int) -> ServerError:
    """Build the ServerError subclass for an RFC error code.

    Unknown codes give a plain ``ServerError`` that still carries the code.
    """
    cls = _ERRORS_BY_CODE.get(error, ServerError)
    return cls(error, description, status)
