"""Renewal of a root agent instance's JWT-SVID, at POST /v1/agents/renew.

The instance authenticates with its current SVID and a DPoP proof of the same key
(``require_agent``), which rejects an SVID that is revoked, killed by an
``instance`` entry, or expired beyond the leeway. The new SVID keeps the SPIFFE ID
and the key, so renewal writes no row: the audit event is the only write. A
sub-agent cannot renew here, because its identity is bounded by its parent's
token; its parent spawns it again instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentiam.audit.events import AuditEvent
from agentiam.errors import OAuthError, UnauthorizedClientError
from agentiam.identity.authn import AgentCaller
from agentiam.identity.classes import AgentClassStore
from agentiam.identity.issuance import issue_svid

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

RENEW_PATH = "/v1/agents/renew"


def _require_root(ctx: ServerContext, caller: AgentCaller) -> None:
    if caller.claims.parent is not None:
        raise UnauthorizedClientError(
            "Only a root agent instance can renew its SVID; a sub-agent is "
            "spawned again by its parent."
        )
    if AgentClassStore(ctx.engine).get(caller.agent_class) is None:
        raise UnauthorizedClientError(
            reason=f"agent class '{caller.agent_class}' does not exist"
        )


async def renew_svid(ctx: ServerContext, caller: AgentCaller) -> dict[str, Any]:
    """Issue a new JWT-SVID for the caller's SPIFFE ID and key.

    Raises:
        UnauthorizedClientError: the caller is a sub-agent or its class is gone.
    """
    _require_root(ctx, caller)

    now = ctx.clock()
    issued = issue_svid(
        ctx,
        agent_class=caller.agent_class,
        jkt=caller.jkt,
        now=now,
        spiffe_id=caller.spiffe_id,
    )

    await ctx.audit.record(
        AuditEvent(
            type="agent.renewed",
            decision="allow",
            outcome="issued",
            actors=(caller.spiffe_id,),
            request={"method": "POST", "path": RENEW_PATH},
            details={
                "agent_class": caller.agent_class,
                "previous_svid_jti": caller.claims.jti,
                "svid_jti": issued.jti,
                "jkt": caller.jkt,
                "expires_at": issued.expires_at,
            },
        )
    )
    return {
        "spiffe_id": issued.spiffe_id,
        "svid": issued.svid,
        "expires_in": issued.expires_in,
    }


async def record_renew_refusal(
    ctx: ServerContext, err: OAuthError, caller: AgentCaller | None
) -> None:
    """Write the ``agent.renew_refused`` event of a rejected renewal."""
    details: dict[str, Any] = {"error": err.error}
    if caller is not None:
        details["svid_jti"] = caller.claims.jti
    await ctx.audit.record(
        AuditEvent(
            type="agent.renew_refused",
            decision="deny",
            outcome="refused",
            reason=(err.reason or err.description)[:1024],
            actors=(caller.spiffe_id,) if caller is not None else (),
            request={"method": "POST", "path": RENEW_PATH},
            details=details,
        )
    )
