"""Errors raised by JWS parsing, signing and verification, JWKs and DPoP proofs.

Messages name the rejected value (a ``kid``, an ``alg``, a ``typ``, a header member)
and never contain a token or key material.
"""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class JOSEError(AgentIAMError):
    """Base class of the errors raised by ``agentiam.jose``."""


class MalformedJWSError(JOSEError):
    """The token is not a well-formed compact JWS (parts, base64url or JSON)."""


class JWENotAcceptedError(MalformedJWSError):
    """The token has five parts, so it is a JWE, and only JWS is accepted."""


class UnsupportedAlgorithmError(JOSEError):
    """The ``alg`` header is missing or outside the allow-list."""


class ForbiddenHeaderError(JOSEError):
    """The protected header has a member outside the allow-list, such as ``jku``."""


class InvalidTypeError(JOSEError):
    """The ``typ`` header is missing or is not the expected type."""


class UnknownKeyError(JOSEError):
    """The ``kid`` header is missing or names no known key."""


class InvalidSignatureError(JOSEError):
    """The signature does not verify with the selected key."""


class InvalidJWKError(JOSEError):
    """A JWK is malformed, private where a public key is expected, or unsupported."""


class DPoPProofError(JOSEError):
    """A DPoP proof (RFC 9449) is invalid for this request."""


class DPoPReplayError(DPoPProofError):
    """A DPoP proof's ``jti`` was already used within its validity window."""


class ReplayCacheFullError(DPoPProofError):
    """The replay cache is full of unexpired entries, so it fails closed."""
