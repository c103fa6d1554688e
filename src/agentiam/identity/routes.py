"""HTTP routes of the identity package: login, logout, attestation, renewal, spawn
and the admin API."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.api.openapi import operation
from agentiam.audit.events import AuditEvent
from agentiam.errors import (
    InvalidGrantError,
    InvalidRequestError,
    NotFoundError,
    OAuthError,
)
from agentiam.identity import schemas
from agentiam.identity.attestation import (
    InstanceKey,
    attest_with_assertion,
    attest_with_join_token,
    record_attest_refusal,
    record_spawn_refusal,
    spawn,
)
from agentiam.identity.authn import (
    AgentCaller,
    DelegateCaller,
    require_admin,
    require_agent,
    require_delegate,
    require_dpop_proof,
    require_session,
)
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.clients import ClientStore
from agentiam.identity.issuance import issue_session
from agentiam.identity.join_tokens import create_join_token_in
from agentiam.identity.json_body import (
    bool_member,
    int_member,
    object_member,
    optional_string_member,
    read_json_object,
    string_list_member,
    string_member,
)
from agentiam.identity.passwords import (
    burn_password_check,
    hash_password,
    verify_password,
)
from agentiam.identity.renewal import record_renew_refusal, renew_svid
from agentiam.identity.users import UserStore, disable_user_in, validate_password
from agentiam.jose import VerificationKey
from agentiam.jose.errors import JOSEError
from agentiam.scope import split_scope

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

Handler = Callable[[Request], Awaitable[Response]]

_LOGIN_FAILED = "The login or password is wrong."


async def _check_login(ctx: ServerContext, login: str, password: str) -> Any:
    """Return the user when the password matches and the user is enabled."""
    found = UserStore(ctx.engine).password_hash(login)
    if found is None:
        await anyio.to_thread.run_sync(burn_password_check, password)
        return None

    user, encoded = found
    matches = await anyio.to_thread.run_sync(verify_password, password, encoded)
    if not matches or user.disabled:
        return None
    return user


@operation(
    "Log a human in with a password",
    request=schemas.LOGIN,
    response=schemas.SESSION,
    status=201,
    tags=("identity",),
)
async def create_session(request: Request, ctx: ServerContext) -> Response:
    """Log a human in with login and password and return a session token.

    Unknown login, wrong password and disabled user return the same error.
    """
    body = await read_json_object(request, ctx, members=schemas.LOGIN["properties"])
    login = string_member(body, "login")
    password = string_member(body, "password")

    user = await _check_login(ctx, login, password)
    if user is None:
        # The login may be a mistyped password, so neither value is recorded.
        await ctx.audit.record(
            AuditEvent(
                type="session.refused",
                decision="deny",
                outcome="refused",
                reason="unknown or wrong credentials",
                request={"method": "POST", "path": "/v1/sessions"},
            )
        )
        raise InvalidGrantError(_LOGIN_FAILED)

    session = issue_session(ctx, user_id=user.id, admin=user.admin, now=ctx.clock())
    await ctx.audit.record(
        AuditEvent(
            type="session.created",
            decision="allow",
            outcome="issued",
            human=user.id,
            request={"method": "POST", "path": "/v1/sessions"},
            details={
                "sid": ctx.audit.pseudonym("sid", session.sid),
                "session_jti": session.jti,
                "amr": ["pwd"],
            },
        )
    )
    return JSONResponse(
        {
            "session_token": session.token,
            "token_type": "Bearer",
            "expires_in": session.expires_in,
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


def _instance_key(jwk: dict[str, Any]) -> InstanceKey:
    try:
        key = VerificationKey.from_jwk(jwk)
    except JOSEError as err:
        raise InvalidRequestError(
            "The member 'public_jwk' is not a supported public key.",
            reason=str(err),
        ) from err
    return InstanceKey(jwk=key.to_jwk(), jkt=key.thumbprint())


@operation(
    "Attest a root agent instance",
    request=schemas.ATTEST,
    response=schemas.SVID,
    status=201,
    tags=("identity",),
)
async def attest(request: Request, ctx: ServerContext) -> Response:
    """Issue a JWT-SVID to a root instance that proves its class.

    The DPoP proof (no ``ath``) carries the instance's public key. A rejected
    attestation writes an ``agent.attest_refused`` event.
    """
    known: dict[str, Any] = {}
    try:
        result = await _attest(request, ctx, known)
    except OAuthError as err:
        await record_attest_refusal(ctx, err, details=known)
        raise
    return JSONResponse(result, status_code=201, headers={"Cache-Control": "no-store"})


async def _attest(
    request: Request, ctx: ServerContext, known: dict[str, Any]
) -> dict[str, Any]:
    proof = require_dpop_proof(request, ctx, access_token=None)
    known["jkt"] = proof.jkt
    body = await read_json_object(request, ctx, members=schemas.ATTEST["properties"])
    agent_class = string_member(body, "agent_class")
    known["agent_class"] = agent_class[:64]
    join_token = optional_string_member(body, "join_token")
    assertion = optional_string_member(body, "assertion")
    key = InstanceKey(jwk=dict(proof.jwk), jkt=proof.jkt)

    if join_token is not None and assertion is None:
        known["method"] = "join_token"
        return await attest_with_join_token(
            ctx, agent_class=agent_class, join_token=join_token, key=key
        )
    if assertion is not None and join_token is None:
        known["method"] = "assertion"
        return await attest_with_assertion(
            ctx, agent_class=agent_class, assertion=assertion, key=key
        )
    raise InvalidRequestError(
        "Send exactly one of the members 'join_token' and 'assertion'."
    )


@operation(
    "Renew the SVID of a root agent instance",
    response=schemas.SVID,
    tags=("identity",),
)
async def renew(request: Request, ctx: ServerContext) -> Response:
    """Issue a new JWT-SVID for the caller's SPIFFE ID and key.

    The caller sends ``Authorization: DPoP <current SVID>`` and a proof of its key.
    A rejected renewal writes an ``agent.renew_refused`` event.
    """
    caller: AgentCaller | None = None
    try:
        caller = await require_agent(request, ctx)
        result = await renew_svid(ctx, caller)
    except OAuthError as err:
        await record_renew_refusal(ctx, err, caller)
        raise
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


@operation("Log the session's human out", status=204, tags=("identity",))
async def delete_current_session(request: Request, ctx: ServerContext) -> Response:
    """Revoke the presented session's ``sid`` so that its token stops working."""
    session = await require_session(request, ctx)

    def work(conn: Connection) -> None:
        # The token dies at its exp, so the entry can go after that plus leeway.
        expires_at = session.exp + ctx.settings.leeway
        ctx.revocations.revoke_in(conn, "session", session.sid, expires_at)
        ctx.audit.record_in(
            conn,
            AuditEvent(
                type="session.revoked",
                decision="none",
                outcome="revoked",
                human=session.sub,
                request={"method": "DELETE", "path": "/v1/sessions/current"},
                details={"sid": session.sid, "revoked_by": f"user:{session.sub}"},
            ),
        )

    await ctx.writer.submit(work)
    return Response(status_code=204)


@operation(
    "Issue an identity to a sub-agent",
    request=schemas.SPAWN,
    response=schemas.SVID,
    status=201,
    tags=("identity",),
)
async def spawn_agent(request: Request, ctx: ServerContext) -> Response:
    """Issue a JWT-SVID to a sub-agent of the caller, bound to ``public_jwk``.

    A rejected spawn writes an ``agent.spawn_refused`` event.
    """
    caller: DelegateCaller | None = None
    known: dict[str, Any] = {}
    try:
        caller = await require_delegate(request, ctx)
        body = await read_json_object(request, ctx, members=schemas.SPAWN["properties"])
        agent_class = string_member(body, "agent_class")
        known["agent_class"] = agent_class[:64]
        key = _instance_key(object_member(body, "public_jwk"))
        result = await spawn(ctx, caller, agent_class=agent_class, key=key)
    except OAuthError as err:
        await record_spawn_refusal(ctx, err, caller, details=known)
        raise
    return JSONResponse(result, status_code=201, headers={"Cache-Control": "no-store"})


@operation(
    "Add a human",
    request=schemas.NEW_USER,
    response=schemas.USER,
    status=201,
    tags=("admin",),
)
async def create_user(request: Request, ctx: ServerContext) -> Response:
    """Add a human to the built-in directory (admin)."""
    await require_admin(request, ctx)
    body = await read_json_object(request, ctx, members=schemas.NEW_USER["properties"])
    login = string_member(body, "login")
    password = string_member(body, "password")
    display_name = optional_string_member(body, "display_name")
    admin = bool_member(body, "admin", default=False)

    validate_password(password)
    password_hash = await anyio.to_thread.run_sync(hash_password, password)
    user = await ctx.writer.submit(
        partial(
            UserStore(ctx.engine).add_in,
            login=login,
            password_hash=password_hash,
            now=ctx.clock(),
            display_name=display_name,
            admin=admin,
        )
    )
    return JSONResponse(user.to_dict(), status_code=201)


@operation("List the humans", response=schemas.USER_LIST, tags=("admin",))
async def list_users(request: Request, ctx: ServerContext) -> Response:
    """List the humans of the built-in directory (admin)."""
    await require_admin(request, ctx)
    users = UserStore(ctx.engine).list()
    return JSONResponse({"users": [user.to_dict() for user in users]})


@operation("Disable a human", response=schemas.USER, tags=("admin",))
async def disable_user(request: Request, ctx: ServerContext) -> Response:
    """Disable a human and revoke every active grant they approved (admin)."""
    session = await require_admin(request, ctx)
    user_id = request.path_params["id"]
    if UserStore(ctx.engine).get(user_id) is None:
        raise NotFoundError(f"User '{user_id[:64]}' was not found.")

    def work(conn: Connection) -> Any:
        user, _ = disable_user_in(
            conn, ctx, user_id, disabled_by=f"user:{session.sub}", now=ctx.clock()
        )
        return user

    user = await ctx.writer.submit(work)
    return JSONResponse(user.to_dict())


def _agent_class_from_body(body: dict[str, Any], owner_id: str) -> AgentClass:
    default_ttl = int_member(body, "default_ttl", default=300)
    scopes = string_list_member(body, "scopes")
    for scope in scopes:
        # Each entry is one scope token, so that a token's scope splits back into it.
        if split_scope(scope) != (scope,):
            raise InvalidRequestError(
                f"Invalid scope value {scope[:64]!r}: an agent class scope is one "
                "scope token."
            )
    return AgentClass(
        name=string_member(body, "name"),
        owner=owner_id,
        scopes=frozenset(scopes),
        audiences=frozenset(string_list_member(body, "audiences")),
        may_spawn=frozenset(string_list_member(body, "may_spawn", default=[])),
        max_depth=int_member(body, "max_depth", default=1),
        default_ttl=default_ttl,
        max_ttl=int_member(body, "max_ttl", default=max(default_ttl, 3600)),
        allow_impersonation=bool_member(body, "allow_impersonation", default=False),
    )


@operation(
    "Add an agent class",
    request=schemas.NEW_AGENT_CLASS,
    response=schemas.AGENT_CLASS,
    status=201,
    tags=("admin",),
)
async def create_agent_class(request: Request, ctx: ServerContext) -> Response:
    """Add an agent class; ``owner`` is the owner's login (admin)."""
    await require_admin(request, ctx)
    body = await read_json_object(
        request, ctx, members=schemas.NEW_AGENT_CLASS["properties"]
    )
    owner = UserStore(ctx.engine).require_by_login(string_member(body, "owner"))
    agent_class = _agent_class_from_body(body, owner.id)

    store = AgentClassStore(ctx.engine)
    await ctx.writer.submit(
        partial(store.add_in, agent_class=agent_class, now=ctx.clock())
    )
    return JSONResponse(agent_class.to_dict(), status_code=201)


@operation("List the agent classes", response=schemas.AGENT_CLASS_LIST, tags=("admin",))
async def list_agent_classes(request: Request, ctx: ServerContext) -> Response:
    """List the agent classes (admin)."""
    await require_admin(request, ctx)
    classes = AgentClassStore(ctx.engine).list()
    return JSONResponse({"agent_classes": [item.to_dict() for item in classes]})


@operation(
    "Show an agent class", response=schemas.AGENT_CLASS_WITH_KEYS, tags=("admin",)
)
async def get_agent_class(request: Request, ctx: ServerContext) -> Response:
    """Show one agent class and the kids of its registered keys (admin)."""
    await require_admin(request, ctx)
    store = AgentClassStore(ctx.engine)
    name = request.path_params["name"]
    agent_class = store.get(name)
    if agent_class is None:
        raise NotFoundError(f"Agent class '{name[:64]}' was not found.")

    return JSONResponse({**agent_class.to_dict(), "keys": store.keys(name)})


@operation(
    "Register an attestation key for a class",
    request=schemas.NEW_CLASS_KEY,
    response=schemas.CLASS_KEY,
    status=201,
    tags=("admin",),
)
async def add_class_key(request: Request, ctx: ServerContext) -> Response:
    """Register a public JWK that signs attestation assertions for a class (admin)."""
    session = await require_admin(request, ctx)
    store = AgentClassStore(ctx.engine)
    name = request.path_params["name"]
    if store.get(name) is None:
        raise NotFoundError(f"Agent class '{name[:64]}' was not found.")

    body = await read_json_object(
        request, ctx, members=schemas.NEW_CLASS_KEY["properties"]
    )
    key = _instance_key(object_member(body, "jwk"))
    kid = VerificationKey.from_jwk(object_member(body, "jwk")).kid
    jwk = {**key.jwk, "kid": kid}
    await ctx.writer.submit(
        partial(
            store.add_key_in,
            name=name,
            kid=kid,
            jwk=jwk,
            created_by=session.sub,
            now=ctx.clock(),
        )
    )
    return JSONResponse({"agent_class": name, "kid": kid}, status_code=201)


@operation(
    "Create a one-time join token",
    request=schemas.NEW_JOIN_TOKEN,
    response=schemas.JOIN_TOKEN,
    status=201,
    tags=("admin",),
)
async def create_join_token(request: Request, ctx: ServerContext) -> Response:
    """Create a one-time join token for a class (its owner or an admin).

    The token is in this response only; the server keeps its hash.
    """
    session = await require_session(request, ctx)
    body = await read_json_object(
        request, ctx, members=schemas.NEW_JOIN_TOKEN["properties"]
    )
    name = string_member(body, "agent_class")
    ttl = int_member(body, "ttl", default=ctx.settings.join_token_ttl)

    # One answer for a class that does not exist and one the caller may not use.
    agent_class = AgentClassStore(ctx.engine).get(name)
    if agent_class is None or not (session.admin or agent_class.owner == session.sub):
        raise NotFoundError(f"Agent class '{name[:64]}' was not found.")

    issued = await ctx.writer.submit(
        partial(
            create_join_token_in,
            agent_class=name,
            created_by=session.sub,
            ttl=ttl,
            max_ttl=ctx.settings.join_token_ttl,
            now=ctx.clock(),
        )
    )
    return JSONResponse(
        {
            "join_token": issued.token,
            "agent_class": issued.agent_class,
            "expires_at": issued.expires_at,
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


@operation(
    "Register a resource-server client",
    request=schemas.NEW_CLIENT,
    response=schemas.CLIENT,
    status=201,
    tags=("admin",),
)
async def create_client(request: Request, ctx: ServerContext) -> Response:
    """Register a resource-server client; the secret is in this response only."""
    await require_admin(request, ctx)
    body = await read_json_object(
        request, ctx, members=schemas.NEW_CLIENT["properties"]
    )
    client_id = string_member(body, "client_id")
    audiences = string_list_member(body, "audiences")

    def add(conn: Connection) -> Any:
        return ClientStore(ctx.engine).add_in(
            conn, client_id, audiences, now=ctx.clock()
        )

    issued = await ctx.writer.submit(add)
    return JSONResponse(
        {**issued.client.to_dict(), "client_secret": issued.client_secret},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


def _bind(
    handler: Callable[[Request, ServerContext], Awaitable[Response]],
    ctx: ServerContext,
) -> Handler:
    # functools.wraps also copies the OpenAPI metadata that ``operation`` set.
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, ctx)

    return endpoint


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the identity routes bound to ``ctx``, for ``agentiam.api.app``."""
    table: list[
        tuple[str, str, Callable[[Request, ServerContext], Awaitable[Response]]]
    ] = [
        ("/v1/sessions", "POST", create_session),
        ("/v1/sessions/current", "DELETE", delete_current_session),
        ("/v1/agents/attest", "POST", attest),
        ("/v1/agents/renew", "POST", renew),
        ("/v1/agents/spawn", "POST", spawn_agent),
        ("/v1/users", "POST", create_user),
        ("/v1/users", "GET", list_users),
        ("/v1/users/{id}/disable", "POST", disable_user),
        ("/v1/agent-classes", "POST", create_agent_class),
        ("/v1/agent-classes", "GET", list_agent_classes),
        ("/v1/agent-classes/{name}", "GET", get_agent_class),
        ("/v1/agent-classes/{name}/keys", "POST", add_class_key),
        ("/v1/join-tokens", "POST", create_join_token),
        ("/v1/clients", "POST", create_client),
    ]
    return [
        Route(path, _bind(handler, ctx), methods=[method])
        for path, method, handler in table
    ]
