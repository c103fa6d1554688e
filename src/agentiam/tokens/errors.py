"""Errors raised when a token fails verification.

``TokenError`` has no OAuth wire code, because the code depends on where the token
was presented: ``invalid_grant`` at ``/token``, ``invalid_token`` at a resource
server. A failure inside ``agentiam.jose`` is re-raised as the matching subclass
here, chained ``from`` the original error, so callers catch only ``TokenError``.
"""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class TokenError(AgentIAMError):
    """Base class of every token verification failure."""


class MalformedTokenError(TokenError):
    """The token is not a well-formed compact JWS, or it is a JWE."""


class UnsupportedTokenAlgorithmError(TokenError):
    """The token's ``alg`` is outside the allow-list or does not match its key."""


class ForbiddenTokenHeaderError(TokenError):
    """The token's header has a member other than ``alg``, ``kid`` and ``typ``."""


class UnknownTokenKeyError(TokenError):
    """The token's ``kid`` is missing or names no known key."""


class InvalidTokenSignatureError(TokenError):
    """The token's signature does not verify."""


class WrongTokenTypeError(TokenError):
    """The token's ``typ`` is not the one expected here."""


class InvalidClaimError(TokenError):
    """A claim is missing, has the wrong type or an invalid value.

    ``claim`` is the claim's name, dotted for members such as ``cnf.jkt``.
    """

    def __init__(self, claim: str, message: str) -> None:
        super().__init__(message)
        self.claim = claim


class ActorChainTooDeepError(InvalidClaimError):
    """The ``act`` claim is nested deeper than the limit."""


class UnsupportedTokenVersionError(TokenError):
    """The token's ``ver`` is not a version this code understands."""


class WrongIssuerError(TokenError):
    """The token's ``iss`` is not the expected issuer."""


class WrongAudienceError(TokenError):
    """The token's ``aud`` does not contain the expected audience."""


class TokenExpiredError(TokenError):
    """The token's ``exp`` has passed, beyond the leeway."""


class TokenNotYetValidError(TokenError):
    """The token's ``nbf`` or ``iat`` is later than now plus the leeway."""


class TokenIssuedInFutureError(TokenNotYetValidError):
    """The token's ``iat`` is later than now plus the leeway."""


class InvalidAmountError(AgentIAMError, ValueError):
    """An amount in authorization_details is not in plain decimal notation."""
