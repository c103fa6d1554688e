"""RFC 8693 token exchange: a delegated token for the next agent in the chain.

The subject token is the parent's delegated access token, the actor token the acting
instance's JWT-SVID, and the request carries a DPoP proof of the actor's key. The new
token is attenuated at every hop (see ``attenuation``), belongs to a task of the
subject's task subtree, and is bound to the actor's key.

Besides the RFC 8693 section 2.1 parameters, the request may carry these extensions.
``requested_expiry`` is the requested lifetime in seconds, since RFC 8693 defines
none. ``purpose`` is the purpose of the child task. ``task_id`` names an open task of
the subject's subtree to join instead of opening a child task.
``audience`` and ``resource`` may each be repeated (RFC 8693 section 2.1, RFC 8707
section 2), and a value may also hold a space-separated list.
"""

from __future__ import annotations

import base64
import functools
import itertools
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from starlette.requests import Request

from agentiam import strict_json
from agentiam.audit import AuditEvent
from agentiam.delegation import attenuation
from agentiam.delegation.caches import delegation_cache
from agentiam.delegation.targets import requested_targets
from agentiam.errors import (
    InvalidAuthorizationDetailsError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
    UnauthorizedClientError,
    UnsupportedTokenTypeError,
)
from agentiam.identity.classes import AgentClass
from agentiam.jose import sign_jws, verify_dpop_proof
from agentiam.jose.errors import JOSEError
from agentiam.scope import split_scope
from agentiam.spiffe import SPIFFEIDError, parse_agent_spiffe_id
from agentiam.tasks import Task, task_store
from agentiam.tasks.store import MAX_PURPOSE_LENGTH, TaskStore, new_task_id
from agentiam.tokens import verify_access_token, verify_svid
from agentiam.tokens.amounts import require_plain_amounts
from agentiam.tokens.errors import InvalidAmountError, TokenError

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext
    from agentiam.delegation.grants import Grant

logger = logging.getLogger(__name__)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
# Random bytes in a new token's jti and in a new task's id, as many as
# secrets.token_urlsafe(16) and secrets.token_hex(16) use.
_ID_BYTES = 16

# Parsing is a pure function of the text, and the IDs come from verified tokens, so
# the same few instances are parsed again and again. Errors are not cached.
_parse_agent_id = functools.lru_cache(maxsize=4096)(parse_agent_spiffe_id)


@dataclass(slots=True)
class _Exchange:
    """What the checks found out, for the audit event of either outcome."""

    subject: dict[str, Any] = field(default_factory=dict)
    actor: dict[str, Any] | None = None
    jkt: str | None = None
    grant: Grant | None = None


@dataclass(frozen=True, slots=True)
class _Issue:
    """The checked request: everything needed to sign and record the new token."""

    claims: dict[str, Any]
    open_task: Task | None
    parent_task: Task
    exp: float
    impersonation: bool = False


class TokenExchangeHandler:
    """The ``token-exchange`` grant type (RFC 8693 section 2) at ``/token``.

    An exchange without an actor token is impersonation: it is rejected with
    ``invalid_request`` unless the agent class of the subject token's client has
    ``allow_impersonation`` set, which defaults to false.
    """

    grant_type = TOKEN_EXCHANGE

    async def handle(
        self, form: Mapping[str, str], request: Request, ctx: ServerContext
    ) -> dict[str, Any]:
        """Check the exchange, issue the token and return the RFC 8693 response.

        Raises:
            OAuthError: the RFC 8693 or RFC 6749 error of the first failed check;
                the refusal is written to the audit log first.
        """
        now = ctx.clock()
        found = _Exchange()
        try:
            issue = self._check(form, request, ctx, now, found)
        except OAuthError as err:
            await ctx.audit.record(_refusal_event(err, found, form))
            raise

        token = sign_jws(issue.claims, ctx.keyring.active(), typ="at+jwt")
        event = _issued_event(issue, form)

        # The task row and the audit event commit together or not at all, and the
        # response waits for that commit.
        await ctx.writer.submit_batched(
            _commit_exchanges, _Commit(ctx, issue, event, now)
        )
        return {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "DPoP",
            "expires_in": max(0, int(issue.exp - now)),
            "scope": issue.claims["scope"],
        }

    def _check(
        self,
        form: Mapping[str, str],
        request: Request,
        ctx: ServerContext,
        now: float,
        found: _Exchange,
    ) -> _Issue:
        subject_token, actor_token = _token_parameters(form)
        found.subject = _verify_subject(subject_token, ctx, now)
        if actor_token is not None:
            found.actor = _verify_actor(actor_token, ctx, now)

        holder, holder_name = (
            (found.actor, "actor_token")
            if found.actor is not None
            else (found.subject, "subject_token")
        )
        found.jkt = _verify_proof(request, ctx, now, _jkt(holder), holder_name)
        grant = _active_grant(found.subject, ctx, now)
        found.grant = grant
        parent_task = _open_task(found.subject, ctx, now)

        if found.actor is None:
            issue = self._impersonate(form, ctx, now, found, parent_task)
            return replace(issue, impersonation=True)
        return _delegate(form, ctx, now, found, found.actor, grant, parent_task)

    def _impersonate(
        self,
        form: Mapping[str, str],
        ctx: ServerContext,
        now: float,
        found: _Exchange,
        parent_task: Task,
    ) -> _Issue:
        subject = found.subject
        agent_class = _class_of(subject["client_id"], ctx)
        if not agent_class.allow_impersonation:
            raise InvalidRequestError(
                "Missing actor_token: the acting instance must present its JWT-SVID.",
                reason=(
                    f"exchange without actor_token and agent class "
                    f"'{agent_class.name}' does not allow impersonation"
                ),
            )
        # The caller proved the subject token's cnf key, and the new token speaks
        # for the same instance, so act and depth stay as they are.
        return _build(
            form,
            ctx,
            now,
            found,
            parent_task,
            actor_id=subject["client_id"],
            actor_class=agent_class,
            act=subject.get("act"),
            depth=int(subject.get("depth", 1)),
            opens_task=False,
        )


def _token_parameters(form: Mapping[str, str]) -> tuple[str, str | None]:
    subject_token = form.get("subject_token")
    if not subject_token:
        raise InvalidRequestError("Missing subject_token.")
    subject_type = form.get("subject_token_type")
    if not subject_type:
        raise InvalidRequestError("Missing subject_token_type.")
    if subject_type != ACCESS_TOKEN_TYPE:
        raise UnsupportedTokenTypeError(
            f"The subject_token_type must be '{ACCESS_TOKEN_TYPE}'."
        )
    # RFC 8693 section 2.2.2 lets the server choose the issued type, and it issues
    # only access tokens, so another requested type is an error.
    requested_type = form.get("requested_token_type")
    if requested_type is not None and requested_type != ACCESS_TOKEN_TYPE:
        raise InvalidRequestError(
            f"Invalid requested_token_type '{requested_type[:128]}': expected "
            f"'{ACCESS_TOKEN_TYPE}'."
        )

    actor_token = form.get("actor_token")
    actor_type = form.get("actor_token_type")
    if not actor_token:
        if actor_type:
            raise InvalidRequestError(
                "The actor_token_type is set without actor_token."
            )
        return subject_token, None
    if not actor_type:
        raise InvalidRequestError("Missing actor_token_type.")
    if actor_type != JWT_TOKEN_TYPE:
        raise UnsupportedTokenTypeError(
            f"The actor_token_type must be '{JWT_TOKEN_TYPE}'."
        )
    return subject_token, actor_token


def _verify_subject(token: str, ctx: ServerContext, now: float) -> dict[str, Any]:
    try:
        claims = verify_access_token(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            audience=None,
            now=now,
            leeway=ctx.settings.leeway,
            cache=ctx.subject_tokens,
        )
    except TokenError as err:
        raise InvalidGrantError(
            "The subject_token is invalid.", reason=f"subject_token: {err}"
        ) from err

    killed_by = ctx.revocations.kills(claims)
    if killed_by is not None:
        raise InvalidGrantError(
            "The subject_token has been revoked.",
            reason=f"subject_token revoked by '{killed_by}'",
        )
    return claims.to_dict()


def _verify_actor(token: str, ctx: ServerContext, now: float) -> dict[str, Any]:
    try:
        claims = verify_svid(
            token,
            ctx.keyring.lookup,
            issuer=ctx.settings.issuer,
            now=now,
            leeway=ctx.settings.leeway,
            cache=ctx.actor_tokens,
        )
    except TokenError as err:
        raise InvalidGrantError(
            "The actor_token is invalid.", reason=f"actor_token: {err}"
        ) from err

    killed_by = ctx.revocations.kills(claims)
    if killed_by is not None:
        raise InvalidGrantError(
            "The actor_token has been revoked.",
            reason=f"actor_token revoked by '{killed_by}'",
        )
    return claims.to_dict()


def _jkt(claims: Mapping[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    if isinstance(cnf, Mapping) and isinstance(cnf.get("jkt"), str):
        return str(cnf["jkt"])
    return None


def _verify_proof(
    request: Request,
    ctx: ServerContext,
    now: float,
    expected_jkt: str | None,
    holder_name: str,
) -> str:
    """Verify the DPoP proof at /token (no ``ath``) and its key against the holder.

    ``holder_name`` is the parameter whose token must be bound to the proof key:
    ``actor_token``, or ``subject_token`` when there is no actor token.
    """
    proofs = request.headers.getlist("dpop")
    if not proofs:
        raise InvalidDPoPProofError("Missing DPoP header.")
    if len(proofs) > 1:
        raise InvalidDPoPProofError("The DPoP header is repeated.")

    try:
        proof = verify_dpop_proof(
            proofs[0],
            htm="POST",
            # The scope's path is what request.url.path returns for this route,
            # without building the whole URL of every request.
            htu=ctx.settings.issuer.rstrip("/") + request.scope["path"],
            now=now,
            replay=ctx.replay,
        )
    except JOSEError as err:
        raise InvalidDPoPProofError(reason=f"DPoP proof: {err}") from err

    if expected_jkt is None or proof.jkt != expected_jkt:
        raise InvalidDPoPProofError(
            f"The DPoP proof key does not match the {holder_name}'s cnf.jkt.",
            reason=f"proof jkt '{proof.jkt}' != token jkt '{expected_jkt}'",
        )
    return proof.jkt


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _active_grant(subject: Mapping[str, Any], ctx: ServerContext, now: float) -> Grant:
    reference = _mapping(subject.get("grant"))
    grant_id = reference.get("id")
    if not isinstance(grant_id, str):
        raise InvalidGrantError(reason="subject_token has no grant.id")

    grant = delegation_cache(ctx.engine).grant(grant_id, ctx.revocations)
    if grant is None:
        raise InvalidGrantError(reason=f"grant '{grant_id}' was not found")
    if not grant.is_active(now):
        raise InvalidGrantError(
            "The grant has expired or been revoked.",
            reason=f"grant '{grant_id}' is not active",
        )
    if reference.get("receipt_hash") != grant.receipt_hash:
        raise InvalidGrantError(reason=f"receipt_hash differs from grant '{grant_id}'")
    return grant


def _open_task(subject: Mapping[str, Any], ctx: ServerContext, now: float) -> Task:
    reference = subject.get("task")
    task_id = reference.get("id") if isinstance(reference, Mapping) else None
    if not isinstance(task_id, str):
        raise InvalidGrantError(reason="subject_token has no task.id")

    task = task_store(ctx.engine, ctx.revocations).get(task_id)
    if task is None:
        raise InvalidGrantError(reason=f"task '{task_id}' was not found")
    if not task.is_open(now):
        raise InvalidGrantError(
            "The subject_token's task is not open.",
            reason=f"task '{task_id}' is {task.status_at(now)}",
        )
    return task


def _class_of(spiffe_id: str, ctx: ServerContext) -> AgentClass:
    try:
        parsed, class_name, _instance = _parse_agent_id(spiffe_id)
    except SPIFFEIDError as err:
        raise InvalidGrantError(reason=f"not an agent SPIFFE ID: {err}") from err
    if str(parsed.trust_domain) != ctx.settings.trust_domain:
        raise InvalidGrantError(reason=f"foreign trust domain in '{spiffe_id}'")

    agent_class = delegation_cache(ctx.engine).agent_class(class_name)
    if agent_class is None:
        raise InvalidGrantError(reason=f"agent class '{class_name}' does not exist")
    return agent_class


def _delegate(
    form: Mapping[str, str],
    ctx: ServerContext,
    now: float,
    found: _Exchange,
    actor: Mapping[str, Any],
    grant: Grant,
    parent_task: Task,
) -> _Issue:
    subject = found.subject
    actor_id = str(actor["sub"])
    actor_class = _class_of(actor_id, ctx)
    subject_client = str(subject["client_id"])
    act = subject.get("act")
    if not isinstance(act, Mapping) or act.get("sub") != subject_client:
        raise InvalidGrantError(
            reason="subject_token act.sub differs from its client_id"
        )

    if actor_id == subject_client:
        # A re-exchange by the holder narrows its own token: no new hop.
        return _build(
            form,
            ctx,
            now,
            found,
            parent_task,
            actor_id=actor_id,
            actor_class=actor_class,
            act=dict(act),
            depth=int(subject["depth"]),
            opens_task=False,
        )

    if actor.get("parent") != subject_client:
        raise UnauthorizedClientError(
            "The actor is not a sub-agent of the subject token's client.",
            reason=f"actor parent {actor.get('parent')!r} != '{subject_client}'",
        )
    # A spawned actor names its whole parent chain, which is the subject's act
    # chain read from the root.
    ancestors = actor.get("ancestors")
    if ancestors is not None and list(ancestors) != _actors(act)[::-1]:
        raise UnauthorizedClientError(
            "The actor is not a sub-agent of the subject token's chain.",
            reason="actor ancestors differ from the subject token's act chain",
        )
    parent_class = _class_of(subject_client, ctx)
    if actor_class.name not in parent_class.may_spawn:
        raise UnauthorizedClientError(
            f"Agent class '{parent_class.name}' may not spawn '{actor_class.name}'.",
        )

    depth = int(subject["depth"]) + 1
    attenuation.require_depth_within(
        depth,
        grant_max_depth=grant.max_depth,
        class_limits=(
            (parent_class.name, parent_class.max_depth),
            (actor_class.name, actor_class.max_depth),
        ),
    )
    return _build(
        form,
        ctx,
        now,
        found,
        parent_task,
        actor_id=actor_id,
        actor_class=actor_class,
        act={"sub": actor_id, "act": dict(act)},
        depth=depth,
        opens_task=True,
    )


def _build(
    form: Mapping[str, str],
    ctx: ServerContext,
    now: float,
    found: _Exchange,
    parent_task: Task,
    *,
    actor_id: str,
    actor_class: AgentClass,
    act: Any,
    depth: int,
    opens_task: bool,
) -> _Issue:
    subject = found.subject
    scopes = _requested_scopes(form, subject, actor_class)
    audiences = _requested_audiences(form, subject, actor_class)
    details = _requested_details(form, subject)

    # One read of the OS random source for both new ids: each read releases the
    # GIL, and getting it back can mean waiting for the group-commit writer.
    random = secrets.token_bytes(2 * _ID_BYTES)
    task, open_task = _target_task(
        form, ctx, now, parent_task, opens_task, random[_ID_BYTES:]
    )
    _check_task_bounds(task, scopes, audiences)
    exp = _requested_exp(form, ctx, now, subject, actor_class, task)

    claims: dict[str, Any] = {
        "ver": 1,
        "iss": ctx.settings.issuer,
        "aud": list(audiences),
        "exp": int(exp),
        "iat": int(now),
        "nbf": int(now),
        "jti": base64.urlsafe_b64encode(random[:_ID_BYTES]).rstrip(b"=").decode(),
        "sub": subject["sub"],
        "client_id": actor_id,
        "scope": " ".join(scopes),
        "act": act,
        "depth": depth,
        "grant": dict(subject["grant"]),
        "task": {"id": task.id, "path": list(task.path)},
        "derived_from": [*subject.get("derived_from", []), subject["jti"]],
        "cnf": {"jkt": found.jkt},
    }
    if details:
        claims["authorization_details"] = details
    return _Issue(claims=claims, open_task=open_task, parent_task=parent_task, exp=exp)


def _requested_scopes(
    form: Mapping[str, str], subject: Mapping[str, Any], actor_class: AgentClass
) -> tuple[str, ...]:
    requested = form.get("scope")
    parent = str(subject.get("scope", "")).split()
    scopes = attenuation.narrow_scopes(
        parent, split_scope(requested) if requested is not None else None
    )
    beyond_class = sorted(set(scopes) - actor_class.scopes)
    if beyond_class:
        raise InvalidScopeError(
            f"Scopes {' '.join(beyond_class)!r} are beyond agent class "
            f"'{actor_class.name}'."
        )
    return scopes


def _requested_audiences(
    form: Mapping[str, str], subject: Mapping[str, Any], actor_class: AgentClass
) -> tuple[str, ...]:
    requested = requested_targets(form)
    parent_aud = subject.get("aud", [])
    parent = [parent_aud] if isinstance(parent_aud, str) else list(parent_aud)
    audiences = attenuation.narrow_audiences(parent, requested)
    beyond_class = sorted(set(audiences) - actor_class.audiences)
    if beyond_class:
        raise InvalidTargetError(
            f"Audiences {' '.join(beyond_class)!r} are beyond agent class "
            f"'{actor_class.name}'."
        )
    return audiences


# Narrowed authorization_details by (subject_token, requested text), oldest first.
# Only successful narrowings are stored, so a refused request is checked again.
_narrowed_details: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
_MAX_NARROWED_DETAILS = 1024
_MAX_NARROWED_KEY_LENGTH = 16384


def _requested_details(
    form: Mapping[str, str], subject: Mapping[str, Any]
) -> list[dict[str, Any]]:
    parent = subject.get("authorization_details") or []
    text = form.get("authorization_details")
    if text is None:
        return attenuation.narrow_authorization_details(parent, None)

    # The parent objects come from the verified subject_token, so the token text
    # and the requested text decide the result.
    key = (form["subject_token"], text)
    narrowed = _narrowed_details.get(key)
    if narrowed is None:
        narrowed = tuple(_narrow_details_text(parent, text))
        if len(key[0]) + len(key[1]) <= _MAX_NARROWED_KEY_LENGTH:
            if len(_narrowed_details) >= _MAX_NARROWED_DETAILS:
                _narrowed_details.pop(next(iter(_narrowed_details)), None)
            _narrowed_details[key] = narrowed
    # Nested values stay shared with the cached entry, which is safe because the
    # issued claims are only encoded and never changed.
    return [dict(item) for item in narrowed]


def _narrow_details_text(
    parent: Sequence[Mapping[str, Any]], text: str
) -> list[dict[str, Any]]:
    try:
        requested = strict_json.loads(text, what="authorization_details")
    except ValueError as err:
        raise InvalidAuthorizationDetailsError(
            "The authorization_details are not valid JSON."
        ) from err
    if not isinstance(requested, list):
        raise InvalidAuthorizationDetailsError(
            "The authorization_details must be a JSON array."
        )
    try:
        require_plain_amounts(requested)
    except InvalidAmountError as err:
        raise InvalidAuthorizationDetailsError(f"{err}.") from err
    return attenuation.narrow_authorization_details(parent, requested)


def _requested_exp(
    form: Mapping[str, str],
    ctx: ServerContext,
    now: float,
    subject: Mapping[str, Any],
    actor_class: AgentClass,
    task: Task,
) -> float:
    text = form.get("requested_expiry")
    requested: int | None = None
    if text is not None:
        if not text.isascii() or not text.isdigit() or len(text) > 9:
            raise InvalidRequestError(
                f"The requested_expiry {text[:16]!r} is not a number of seconds."
            )
        requested = int(text)
        maximum = min(actor_class.max_ttl, ctx.settings.max_access_token_ttl)
        if requested > maximum:
            raise InvalidRequestError(
                f"The requested_expiry of {requested} seconds exceeds the maximum "
                f"of {maximum} seconds."
            )

    default_ttl = min(actor_class.default_ttl, ctx.settings.access_token_ttl)
    parent_exp = min(float(subject["exp"]), task.expires_at)
    return attenuation.narrow_expiry(
        now=now,
        parent_exp=parent_exp,
        default_ttl=default_ttl,
        requested_ttl=requested,
    )


def _target_task(
    form: Mapping[str, str],
    ctx: ServerContext,
    now: float,
    parent_task: Task,
    opens_task: bool,
    random: bytes,
) -> tuple[Task, Task | None]:
    """Return the task of the new token and, when it is new, the task to insert.

    ``random`` is the 16 random bytes of the id of a new task.
    """
    task_id = form.get("task_id")
    if task_id is not None:
        joined = task_store(ctx.engine, ctx.revocations).get(task_id)
        if joined is None or parent_task.id not in joined.path:
            raise InvalidRequestError(
                f"The task_id {task_id[:64]!r} is not in the subject token's task tree."
            )
        if not joined.is_open(now):
            raise InvalidRequestError(f"The task {task_id[:64]!r} is not open.")
        return joined, None

    purpose = form.get("purpose")
    if not opens_task and purpose is None:
        return parent_task, None
    if purpose is not None and len(purpose) > MAX_PURPOSE_LENGTH:
        raise InvalidRequestError(
            f"The purpose is longer than {MAX_PURPOSE_LENGTH} characters."
        )

    child_id = new_task_id(random)
    child = Task(
        id=child_id,
        grant_id=parent_task.grant_id,
        parent_id=parent_task.id,
        path=(*parent_task.path, child_id),
        purpose=purpose if purpose is not None else parent_task.purpose,
        scopes=(),
        audiences=(),
        opened_by="",
        opened_at=now,
        status="open",
        # The child lasts until its parent task ends unless it is closed first.
        expires_at=parent_task.expires_at,
        closed_at=None,
        closed_by=None,
    )
    return child, child


def _check_task_bounds(
    task: Task, scopes: tuple[str, ...], audiences: tuple[str, ...]
) -> None:
    if task.scopes or task.audiences:
        extra = sorted(set(scopes) - set(task.scopes))
        if extra:
            raise InvalidScopeError(
                f"Scopes {' '.join(extra)!r} are not in task '{task.id}'."
            )
        extra = sorted(set(audiences) - set(task.audiences))
        if extra:
            raise InvalidTargetError(
                f"Audiences {' '.join(extra)!r} are not in task '{task.id}'."
            )


@dataclass(frozen=True, slots=True)
class _Commit:
    """One issued exchange waiting for the group commit: its task and its event."""

    ctx: ServerContext
    issue: _Issue
    event: AuditEvent
    now: float


def _commit_exchanges(conn: Connection, items: Sequence[_Commit]) -> list[int]:
    """Insert the new tasks of a batch of exchanges, then append their events.

    Each task is checked against its parent on ``conn`` first, so a parent closed
    since the request was checked fails that exchange. The writer runs this for
    the adjacent exchanges of one batch in one SAVEPOINT, and when it raises it
    runs each exchange again alone, so only the failing ones fail.
    """
    opened: dict[int, tuple[TaskStore, list[Task]]] = {}
    for item in items:
        if item.issue.open_task is None:
            continue
        store = task_store(item.ctx.engine, item.ctx.revocations)
        task = _prepare_task(conn, store, item.issue, item.issue.open_task, item.now)
        opened.setdefault(id(store), (store, []))[1].append(task)
    for store, tasks in opened.values():
        store.insert_in(conn, tasks)

    # Adjacent exchanges of one audit log share one append, in batch order.
    seqs: list[int] = []
    for _, run in itertools.groupby(items, key=lambda item: id(item.ctx.audit)):
        same_log = list(run)
        audit = same_log[0].ctx.audit
        seqs.extend(audit.record_many_in(conn, [item.event for item in same_log]))
    return seqs


def _prepare_task(
    conn: Connection, store: TaskStore, issue: _Issue, task: Task, now: float
) -> Task:
    claims = issue.claims
    return store.prepare_open_in(
        conn,
        grant_id=task.grant_id,
        parent_id=issue.parent_task.id,
        purpose=task.purpose,
        scopes=str(claims["scope"]).split(),
        audiences=claims["aud"],
        expires_at=task.expires_at,
        opened_by=str(claims["client_id"]),
        now=now,
        task_id=task.id,
    )


def _actors(act: Any) -> list[str]:
    chain: list[str] = []
    while isinstance(act, Mapping) and len(chain) < 64:
        if isinstance(act.get("sub"), str):
            chain.append(act["sub"])
        act = act.get("act")
    return chain


def _request_record(form: Mapping[str, str]) -> dict[str, Any]:
    safe = (
        "grant_type",
        "scope",
        "audience",
        "resource",
        "requested_expiry",
        "purpose",
        "task_id",
        "subject_token_type",
        "actor_token_type",
    )
    parameters = {name: form[name][:512] for name in safe if form.get(name)}
    return {"method": "POST", "endpoint": "/token", "parameters": parameters}


def _issued_event(issue: _Issue, form: Mapping[str, str]) -> AuditEvent:
    claims = issue.claims
    return AuditEvent(
        type="token.exchanged",
        decision="allow",
        outcome="issued",
        human=str(claims["sub"]),
        receipt_hash=claims["grant"].get("receipt_hash"),
        grant_id=claims["grant"].get("id"),
        actors=_actors(claims["act"]) or [str(claims["client_id"])],
        task_path=list(claims["task"]["path"]),
        request=_request_record(form),
        details={
            "jti": claims["jti"],
            "exp": claims["exp"],
            "depth": claims["depth"],
            "scope": claims["scope"],
            "aud": claims["aud"],
            "derived_from": claims["derived_from"],
            "task_opened": issue.open_task is not None,
            "impersonation": issue.impersonation,
        },
    )


def _refusal_event(
    err: OAuthError, found: _Exchange, form: Mapping[str, str]
) -> AuditEvent:
    subject = found.subject
    grant = _mapping(subject.get("grant"))
    task = _mapping(subject.get("task"))
    actors = _actors(subject.get("act"))
    if found.actor is not None:
        actors = [str(found.actor.get("sub")), *actors]
    # An exchange with no actor_token asks for impersonation.
    details: dict[str, Any] = {
        "error": err.error,
        "impersonation": not form.get("actor_token"),
    }
    if isinstance(subject.get("jti"), str):
        details["subject_jti"] = subject["jti"]
    return AuditEvent(
        type="token.exchange_refused",
        decision="deny",
        outcome="refused",
        reason=(err.reason or err.description)[:1024],
        human=subject.get("sub") if isinstance(subject.get("sub"), str) else None,
        receipt_hash=grant.get("receipt_hash"),
        grant_id=grant.get("id"),
        actors=actors,
        task_path=[item for item in task.get("path", []) if isinstance(item, str)],
        request=_request_record(form),
        details=details,
    )
