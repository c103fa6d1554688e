"""RFC 7009 token revocation at POST /revoke.

The caller is a resource-server client (HTTP Basic) whose audiences include one of
the token's, or the token holder, proving the bound key with a DPoP proof whose
``ath`` is the token's hash. Revocation puts the token's ``jti`` into the revocation
set, which kills every token exchanged from it, since they carry it in
``derived_from``. An invalid or expired token returns 200 (RFC 7009 section 2.2), and
``token_type_hint`` is read as a hint only, so unknown values are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from agentiam.api.forms import parse_form
from agentiam.audit import AuditEvent
from agentiam.errors import InvalidClientError, InvalidRequestError
from agentiam.identity.authn import require_client, require_dpop_proof
from agentiam.tokens import AccessTokenClaims, verify_access_token
from agentiam.tokens.errors import TokenError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

NO_STORE = {"Cache-Control": "no-store"}


async def revoke_endpoint(request: Request, ctx: ServerContext) -> Response:
    """POST /revoke: authenticate the caller and revoke the token's jti."""
    authorization = request.headers.get("authorization", "")
    scheme = authorization.partition(" ")[0].lower()
    client = None
    if scheme == "basic":
        client = await require_client(request, ctx)
    elif not request.headers.get("dpop"):
        raise InvalidClientError(
            "Authenticate with HTTP Basic or send a DPoP proof of the token's key."
        )

    form = await parse_form(request, max_bytes=ctx.settings.form_max_bytes)
    token = form.get("token")
    if not token:
        raise InvalidRequestError("The parameter 'token' is missing.")

    claims = _verified(token, ctx)
    if claims is None:
        return Response(status_code=200, headers=NO_STORE)

    if client is not None:
        if not set(claims.aud) & client.audiences:
            # RFC 7009 section 2.1: a client revokes only tokens issued to it.
            return Response(status_code=200, headers=NO_STORE)
        revoked_by = client.client_id
    else:
        proof = require_dpop_proof(request, ctx, access_token=token)
        if proof.jkt != claims.cnf_jkt:
            raise InvalidClientError("The DPoP proof key does not match the token.")
        revoked_by = claims.client_id

    await _revoke(claims, revoked_by, ctx)
    return Response(status_code=200, headers=NO_STORE)


def _verified(token: str, ctx: ServerContext) -> AccessTokenClaims | None:
    try:
        return verify_access_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            audience=None,
            now=ctx.clock(),
            leeway=ctx.settings.leeway,
        )
    except TokenError:
        return None


async def _revoke(
    claims: AccessTokenClaims, revoked_by: str, ctx: ServerContext
) -> None:
    event = AuditEvent(
        type="token.revoked",
        decision="none",
        outcome="revoked",
        human=claims.sub,
        receipt_hash=claims.grant.receipt_hash,
        grant_id=claims.grant.id,
        actors=list(claims.actors) or [claims.client_id],
        task_path=list(claims.task.path) if claims.task is not None else [],
        request={"method": "POST", "endpoint": "/revoke"},
        details={"jti": claims.jti, "revoked_by": revoked_by},
    )

    def work(conn: Connection) -> None:
        # Derived tokens never outlive this one, so its exp bounds the entry.
        ctx.revocations.revoke_in(conn, "token", claims.jti, claims.exp)
        ctx.audit.record_in(conn, event)

    await ctx.writer.submit(work)
