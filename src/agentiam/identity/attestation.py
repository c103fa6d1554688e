"""Attestation of root agent instances and identities for sub-agents.

A root instance proves its class with a one-time join token or with an assertion
signed by a key registered for the class. A sub-agent gets its identity from its
parent, which presents its delegated access token. Either way the server picks a
random instance id and signs a JWT-SVID bound to the instance key. No row is
written per instance: the join token consumption and the audit event are the only
writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from agentiam.audit.events import AuditEvent
from agentiam.delegation.attenuation import require_depth_within
from agentiam.delegation.caches import delegation_cache
from agentiam.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    UnauthorizedClientError,
)
from agentiam.identity.authn import DelegateCaller
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.issuance import IssuedSVID, issue_svid
from agentiam.identity.join_tokens import consume_join_token_in, hash_join_token
from agentiam.jose import VerificationKey, verify_jws
from agentiam.jose.errors import JOSEError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)

# The maximum lifetime of an attestation assertion, in seconds from now to its exp.
MAX_ASSERTION_LIFETIME = 300
ASSERTION_TYP = "JWT"

# Assertion jtis share the DPoP replay cache, so they get their own namespace.
_ASSERTION_REPLAY_PREFIX = "attest:"


@dataclass(frozen=True, slots=True)
class InstanceKey:
    """The public key a new instance holds: its JWK and RFC 7638 thumbprint."""

    jwk: dict[str, Any]
    jkt: str


def _require_class(ctx: ServerContext, name: str, error: type[Exception]) -> AgentClass:
    agent_class = AgentClassStore(ctx.engine).get(name)
    if agent_class is None:
        raise error(f"Agent class '{name}' was not found.")
    return agent_class


def _svid_response(issued: IssuedSVID) -> dict[str, Any]:
    return {
        "spiffe_id": issued.spiffe_id,
        "svid": issued.svid,
        "expires_in": issued.expires_in,
    }


def _attested_event(
    method: str, agent_class: str, issued: IssuedSVID, jkt: str
) -> AuditEvent:
    return AuditEvent(
        type="agent.attested",
        decision="allow",
        outcome="issued",
        actors=(issued.spiffe_id,),
        request={"method": "POST", "path": "/v1/agents/attest"},
        details={
            "method": method,
            "agent_class": agent_class,
            "svid_jti": issued.jti,
            "jkt": jkt,
            "expires_at": issued.expires_at,
        },
    )


async def attest_with_join_token(
    ctx: ServerContext, *, agent_class: str, join_token: str, key: InstanceKey
) -> dict[str, Any]:
    """Consume a join token and issue a JWT-SVID for a root instance of its class.

    The token is consumed and the audit event written in one unit of work, so a
    failed audit write leaves the token unused and issues nothing.

    Raises:
        InvalidGrantError: the token is unknown, expired, used or for another class.
    """
    _require_class(ctx, agent_class, InvalidGrantError)
    now = ctx.clock()
    issued = issue_svid(ctx, agent_class=agent_class, jkt=key.jkt, now=now)
    event = _attested_event("join_token", agent_class, issued, key.jkt)
    # The consumed token, as the pseudonym of its stored hash, never the hash.
    pseudonym = ctx.audit.pseudonym("join_token", hash_join_token(join_token))
    event = replace(event, details={**event.details, "join_token_pseudonym": pseudonym})

    def consume(conn: Connection) -> bool:
        if not consume_join_token_in(
            conn, join_token, agent_class=agent_class, now=now
        ):
            return False
        ctx.audit.record_in(conn, event)
        return True

    if not await ctx.writer.submit(consume):
        raise InvalidGrantError(
            "The join token is invalid, expired, already used or for another "
            "agent class."
        )
    return _svid_response(issued)


def _verify_assertion_claims(
    ctx: ServerContext, claims: dict[str, Any], agent_class: str, now: float
) -> tuple[str, float]:
    leeway = ctx.settings.leeway
    if claims.get("iss") != agent_class or claims.get("sub") != agent_class:
        raise InvalidGrantError("The assertion's iss and sub must be the class name.")

    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if ctx.settings.issuer not in audiences:
        raise InvalidGrantError("The assertion's aud must be the issuer.")

    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidGrantError("The assertion has no numeric exp.")
    if exp < now - leeway:
        raise InvalidGrantError("The assertion has expired.")
    if exp > now + MAX_ASSERTION_LIFETIME + leeway:
        raise InvalidGrantError(
            f"The assertion's exp is more than {MAX_ASSERTION_LIFETIME} seconds ahead."
        )

    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidGrantError("The assertion has no jti.")
    return jti, float(exp)


async def attest_with_assertion(
    ctx: ServerContext, *, agent_class: str, assertion: str, key: InstanceKey
) -> dict[str, Any]:
    """Verify a class-key assertion and issue a JWT-SVID for a root instance.

    The assertion is a JWS (``typ`` JWT) signed by a key registered for the class,
    with ``iss`` and ``sub`` the class name, ``aud`` the issuer, an ``exp`` at most
    five minutes ahead and a ``jti`` that is accepted once.

    Raises:
        InvalidGrantError: the assertion is invalid, expired, replayed, or not
            signed by a key of the class.
    """
    store = AgentClassStore(ctx.engine)
    _require_class(ctx, agent_class, InvalidGrantError)

    def lookup(kid: str) -> VerificationKey | None:
        jwk = store.key(agent_class, kid)
        return None if jwk is None else VerificationKey.from_jwk(jwk, kid=kid)

    try:
        _, claims = verify_jws(assertion, lookup, typ=ASSERTION_TYP)
    except JOSEError as err:
        raise InvalidGrantError(
            "The assertion is not a valid JWS signed by a key of the class.",
            reason=str(err),
        ) from err

    now = ctx.clock()
    jti, exp = _verify_assertion_claims(ctx, claims, agent_class, now)
    try:
        ctx.replay.check_and_add(_ASSERTION_REPLAY_PREFIX + jti, exp, now)
    except JOSEError as err:
        raise InvalidGrantError(
            "The assertion has already been used.", reason=str(err)
        ) from err

    issued = issue_svid(ctx, agent_class=agent_class, jkt=key.jkt, now=now)
    event = _attested_event("assertion", agent_class, issued, key.jkt)
    await ctx.audit.record(event)
    return _svid_response(issued)


def _require_spawn_allowed(
    ctx: ServerContext, caller: DelegateCaller, parent: AgentClass, child: AgentClass
) -> None:
    if child.name not in parent.may_spawn:
        raise UnauthorizedClientError(
            f"Agent class '{parent.name}' may not spawn agent class '{child.name}'."
        )

    claims = caller.claims
    grant = delegation_cache(ctx.engine).grant(claims.grant.id, ctx.revocations)
    if grant is None or not grant.is_active(ctx.clock()):
        raise InvalidTokenError(
            "The token's grant has expired or been revoked.",
            reason=f"grant '{claims.grant.id}' is missing or not active",
        )

    # The child acts one hop below the parent, and the exchange applies the same
    # rule when the child first exchanges the parent's token.
    require_depth_within(
        claims.depth + 1,
        grant_max_depth=grant.max_depth,
        class_limits=(
            (parent.name, parent.max_depth),
            (child.name, child.max_depth),
        ),
        error=AccessDeniedError,
    )


async def spawn(
    ctx: ServerContext, caller: DelegateCaller, *, agent_class: str, key: InstanceKey
) -> dict[str, Any]:
    """Issue a JWT-SVID for a sub-agent of the caller, in the caller's task.

    Raises:
        InvalidRequestError: the child class does not exist or the child key is
            the parent's.
        InvalidTokenError: the grant of the caller's token is no longer active.
        UnauthorizedClientError: the parent's class may not spawn the child class.
        AccessDeniedError: the child's depth (the caller token's depth + 1) would
            exceed the grant's max_depth or the parent's or child's class
            max_depth.
    """
    parent = _require_class(ctx, caller.agent_class, UnauthorizedClientError)
    child = _require_class(ctx, agent_class, InvalidRequestError)
    _require_spawn_allowed(ctx, caller, parent, child)
    if key.jkt == caller.jkt:
        raise InvalidRequestError("The sub-agent key must differ from the parent key.")

    claims = caller.claims
    chain = _chain(caller)
    now = ctx.clock()
    # The child dies no later than the parent's token: a child SVID must not
    # outlive the authority it was spawned under. Its ancestors are the parent
    # token's act chain, root first, so revoking any of them kills the child.
    issued = issue_svid(
        ctx,
        agent_class=agent_class,
        jkt=key.jkt,
        now=now,
        parent=caller.spiffe_id,
        task=claims.task,
        not_after=claims.exp,
        ancestors=tuple(reversed(chain)),
    )

    await ctx.audit.record(
        AuditEvent(
            type="agent.spawned",
            decision="allow",
            outcome="issued",
            human=claims.sub,
            receipt_hash=claims.grant.receipt_hash,
            grant_id=claims.grant.id,
            actors=(issued.spiffe_id, *chain),
            task_path=tuple(claims.task.path) if claims.task else (),
            request={"method": "POST", "path": "/v1/agents/spawn"},
            details={
                "agent_class": agent_class,
                "parent_jti": claims.jti,
                "svid_jti": issued.jti,
                "jkt": key.jkt,
                "expires_at": issued.expires_at,
            },
        )
    )
    return _svid_response(issued)


def _chain(caller: DelegateCaller) -> tuple[str, ...]:
    act = caller.claims.act
    return act.chain() if act is not None else (caller.spiffe_id,)


def _refusal_details(err: OAuthError, details: Mapping[str, Any]) -> dict[str, Any]:
    return {"error": err.error, **{k: v for k, v in details.items() if v is not None}}


async def record_attest_refusal(
    ctx: ServerContext, err: OAuthError, *, details: Mapping[str, Any]
) -> None:
    """Write the ``agent.attest_refused`` event of a rejected attestation.

    Args:
        details: safe values known when the request failed, such as the method,
            the agent class and the key thumbprint; never the join token or the
            assertion.
    """
    await ctx.audit.record(
        AuditEvent(
            type="agent.attest_refused",
            decision="deny",
            outcome="refused",
            reason=(err.reason or err.description)[:1024],
            request={"method": "POST", "path": "/v1/agents/attest"},
            details=_refusal_details(err, details),
        )
    )


async def record_spawn_refusal(
    ctx: ServerContext,
    err: OAuthError,
    caller: DelegateCaller | None,
    *,
    details: Mapping[str, Any],
) -> None:
    """Write the ``agent.spawn_refused`` event of a rejected spawn.

    Args:
        caller: the authenticated parent, or None when authentication failed.
        details: safe values known when the request failed, e.g. the child class.
    """
    claims = caller.claims if caller is not None else None
    await ctx.audit.record(
        AuditEvent(
            type="agent.spawn_refused",
            decision="deny",
            outcome="refused",
            reason=(err.reason or err.description)[:1024],
            human=claims.sub if claims else None,
            receipt_hash=claims.grant.receipt_hash if claims else None,
            grant_id=claims.grant.id if claims else None,
            actors=_chain(caller) if caller is not None else (),
            task_path=tuple(claims.task.path) if claims and claims.task else (),
            request={"method": "POST", "path": "/v1/agents/spawn"},
            details=_refusal_details(
                err, {**details, "parent_jti": claims.jti if claims else None}
            ),
        )
    )
