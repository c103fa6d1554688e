"""Caller authentication for the server's own endpoints.

Agents send ``Authorization: DPoP <token>`` with a ``DPoP`` proof signed by their
instance key (RFC 9449 section 7): the proof's ``ath`` is the token's hash, its ``htu``
is the issuer plus the request path, and its key thumbprint equals the token's
``cnf.jkt``. Humans send ``Authorization: Bearer <session token>``. Resource servers
send HTTP Basic (``client_secret_basic``, RFC 6749 section 2.3.1).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from starlette.requests import Request

from agentiam.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidDPoPProofError,
    InvalidRequestError,
    InvalidTokenError,
)
from agentiam.identity.clients import Client, ClientStore
from agentiam.identity.users import UserStore
from agentiam.jose import DPoPProof, verify_dpop_proof
from agentiam.jose.errors import JOSEError
from agentiam.spiffe import SPIFFEIDError, parse_agent_spiffe_id
from agentiam.tokens import (
    AccessTokenClaims,
    SessionClaims,
    SVIDClaims,
    verify_access_token,
    verify_session_token,
    verify_svid,
)
from agentiam.tokens.errors import TokenError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentCaller:
    """An agent instance authenticated by its JWT-SVID and a DPoP proof."""

    claims: SVIDClaims
    spiffe_id: str
    agent_class: str
    instance: str
    jkt: str


@dataclass(frozen=True, slots=True)
class DelegateCaller:
    """An agent instance authenticated by a delegated access token and DPoP proof."""

    claims: AccessTokenClaims
    token: str
    spiffe_id: str
    agent_class: str
    instance: str
    jkt: str


def request_htu(request: Request, ctx: ServerContext) -> str:
    """Return the ``htu`` a proof for this request must carry: issuer plus path."""
    return ctx.settings.issuer.rstrip("/") + request.url.path


def _single_header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise InvalidRequestError(f"The '{name}' header is repeated.")
    return values[0] if values else None


def _authorization(request: Request, scheme: str) -> str:
    header = _single_header(request, "authorization")
    if header is None:
        raise InvalidTokenError(f"Missing Authorization header with scheme {scheme}.")

    sent_scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if sent_scheme.lower() != scheme.lower() or not credentials:
        raise InvalidTokenError(f"Expected the Authorization scheme {scheme}.")
    return credentials


def require_dpop_proof(
    request: Request, ctx: ServerContext, *, access_token: str | None
) -> DPoPProof:
    """Verify the request's ``DPoP`` header, with ``ath`` when a token is given.

    Raises:
        InvalidDPoPProofError: the proof is missing, invalid or replayed.
    """
    proof = _single_header(request, "dpop")
    if proof is None:
        raise InvalidDPoPProofError("Missing DPoP header.")

    try:
        return verify_dpop_proof(
            proof,
            htm=request.method,
            htu=request_htu(request, ctx),
            now=ctx.clock(),
            access_token=access_token,
            replay=ctx.replay,
        )
    except JOSEError as err:
        raise InvalidDPoPProofError(reason=str(err)) from err


def _require_bound(proof: DPoPProof, jkt: str | None) -> None:
    if jkt is None or proof.jkt != jkt:
        raise InvalidDPoPProofError("The proof key does not match the token's cnf.jkt.")


def _split_agent_id(spiffe_id: str, ctx: ServerContext) -> tuple[str, str]:
    try:
        parsed, agent_class, instance = parse_agent_spiffe_id(spiffe_id)
    except SPIFFEIDError as err:
        raise InvalidTokenError(reason=str(err)) from err
    if str(parsed.trust_domain) != ctx.settings.trust_domain:
        raise InvalidTokenError(reason=f"foreign trust domain in '{spiffe_id}'")
    return agent_class, instance


async def require_agent(request: Request, ctx: ServerContext) -> AgentCaller:
    """Authenticate an agent instance by its JWT-SVID and a bound DPoP proof.

    Raises:
        InvalidTokenError: the SVID is missing, invalid, expired or revoked.
        InvalidDPoPProofError: the proof is missing, invalid or not bound to it.
    """
    token = _authorization(request, "DPoP")
    try:
        claims = verify_svid(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError as err:
        raise InvalidTokenError(reason=str(err)) from err

    killed_by = ctx.revocations.kills(claims)
    if killed_by is not None:
        raise InvalidTokenError("The token has been revoked.", reason=killed_by)

    agent_class, instance = _split_agent_id(claims.sub, ctx)
    proof = require_dpop_proof(request, ctx, access_token=token)
    _require_bound(proof, claims.cnf_jkt)
    return AgentCaller(claims, claims.sub, agent_class, instance, proof.jkt)


async def require_delegate(request: Request, ctx: ServerContext) -> DelegateCaller:
    """Authenticate an agent instance by its delegated access token and DPoP proof.

    The server is not one of the token's audiences, so the audience is not checked.

    Raises:
        InvalidTokenError: the token is missing, invalid, expired or revoked.
        InvalidDPoPProofError: the proof is missing, invalid or not bound to it.
    """
    token = _authorization(request, "DPoP")
    try:
        claims = verify_access_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            audience=None,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError as err:
        raise InvalidTokenError(reason=str(err)) from err

    killed_by = ctx.revocations.kills(claims)
    if killed_by is not None:
        raise InvalidTokenError("The token has been revoked.", reason=killed_by)

    agent_class, instance = _split_agent_id(claims.client_id, ctx)
    proof = require_dpop_proof(request, ctx, access_token=token)
    _require_bound(proof, claims.cnf_jkt)
    return DelegateCaller(
        claims, token, claims.client_id, agent_class, instance, proof.jkt
    )


async def require_session(request: Request, ctx: ServerContext) -> SessionClaims:
    """Authenticate a human by a session token of an enabled user.

    Raises:
        InvalidTokenError: the token is missing, invalid, expired or revoked, or
            its user is disabled or gone.
    """
    token = _authorization(request, "Bearer")
    try:
        claims = verify_session_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError as err:
        raise InvalidTokenError(reason=str(err)) from err

    if ctx.revocations.is_revoked("session", claims.sid):
        raise InvalidTokenError("The session has been revoked.")
    user = UserStore(ctx.engine).get(claims.sub)
    if user is None or user.disabled:
        raise InvalidTokenError(reason=f"user '{claims.sub}' is disabled or gone")
    return claims


async def require_admin(request: Request, ctx: ServerContext) -> SessionClaims:
    """Authenticate a human by a session token with ``admin`` set.

    Raises:
        InvalidTokenError: as ``require_session``.
        AccessDeniedError: the session is not an administrator's.
    """
    claims = await require_session(request, ctx)
    if not claims.admin:
        raise AccessDeniedError("This request needs an administrator session.")
    return claims


def _basic_credentials(request: Request) -> tuple[str, str]:
    header = _single_header(request, "authorization")
    if header is None:
        raise InvalidClientError("Missing HTTP Basic client authentication.")

    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientError("Expected HTTP Basic client authentication.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise InvalidClientError("Malformed HTTP Basic credentials.") from err

    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClientError("Malformed HTTP Basic credentials.")
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before encoding.
    return unquote_plus(client_id), unquote_plus(secret)


async def require_client(request: Request, ctx: ServerContext) -> Client:
    """Authenticate a resource-server client with ``client_secret_basic``.

    Raises:
        InvalidClientError: the credentials are missing, malformed or wrong, or the
            client is disabled. Unknown client and wrong secret share one message.
    """
    client_id, secret = _basic_credentials(request)
    client = ClientStore(ctx.engine).authenticate(client_id, secret)
    if client is None:
        raise InvalidClientError(reason=f"bad credentials for client '{client_id}'")
    return client
