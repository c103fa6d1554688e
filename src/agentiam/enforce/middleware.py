"""EnforcementMiddleware, the raw ASGI guard in front of a resource server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from agentiam.enforce._asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    request_url,
    send_json_error,
    www_authenticate,
)
from agentiam.enforce._claims import (
    NO_CALLER,
    VerifiedToken,
    verified_token,
)
from agentiam.enforce.audit import (
    DECISION_VERSION,
    OUTCOME_ERROR,
    DecisionSink,
    new_decision_id,
)
from agentiam.enforce.cache import TokenCache
from agentiam.enforce.config import EnforcementConfig, Rule
from agentiam.enforce.details import PRINCIPAL_KEY, STATE_KEY, RequestState
from agentiam.enforce.errors import ForbiddenError, JWKSError, RevocationFeedError
from agentiam.enforce.jwks import JWKSCache
from agentiam.enforce.principal import Principal
from agentiam.enforce.revocations import RevocationFeed
from agentiam.jose import (
    JOSEError,
    ReplayCache,
    unverified_header,
    verify_dpop_proof_jkt,
)
from agentiam.tokens import verify_access_token
from agentiam.tokens.errors import TokenError

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Denied(Exception):
    """A denial the middleware sends itself; ``reason`` is never sent."""

    status: int
    error: str
    description: str
    reason: str
    scope: str | None = None
    challenge: bool = True
    # Set once the token and proof verified, so the decision records the chain.
    token: VerifiedToken | None = None


class EnforcementMiddleware:
    """ASGI middleware that authorizes every HTTP request before the application.

    Each request first reserves an audit slot, and gets 503 when the buffer is
    full. The middleware then reads ``Authorization: DPoP <token>`` and the
    ``DPoP`` proof and verifies both. The token is cached by hash after its first
    verification, and the proof key must be the token's ``cnf.jkt``. Next it checks
    the local revocation copy (503 when stale) and the first matching Rule and its
    scopes (403 when none matches). Last it calls the application with the
    Principal in ``scope["agentiam.principal"]`` and records the decision.
    Background tasks start at ASGI lifespan startup or on the first request, and
    stop at lifespan shutdown or ``aclose``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: EnforcementConfig,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=config.http_timeout)
        auth = httpx.BasicAuth(config.client_id, config.client_secret)
        self.jwks = JWKSCache(
            self._http,
            config.issuer,
            algorithms=config.algorithms,
            min_refetch_interval=config.jwks_min_refetch_interval,
            clock=config.clock,
        )
        self.revocations = RevocationFeed(
            self._http,
            config.issuer,
            auth,
            max_staleness=config.revocation_max_staleness,
            clock=config.clock,
        )
        self.decisions = DecisionSink(
            self._http,
            config.issuer,
            auth,
            max_size=config.audit_buffer_size,
            batch_size=config.audit_batch_size,
            flush_interval=config.audit_flush_interval,
        )
        self.tokens: TokenCache[VerifiedToken] = TokenCache(config.token_cache_size)
        self._replay = ReplayCache(config.replay_cache_size)
        self._clock = config.clock
        self._rules = tuple(config.rules)
        self._realm = config.realm or config.audience
        self._algs = " ".join(sorted(config.algorithms))
        self._tasks: list[asyncio.Task[None]] = []
        self._start_lock: asyncio.Lock | None = None
        self._started = False

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Fetch the revocation feed once and start the background tasks.

        A failed first poll is logged; requests then fail with 503 until a poll
        succeeds, because an empty copy is never treated as fresh.
        """
        if self._started:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            try:
                await self.revocations.poll()
            except RevocationFeedError as err:
                logger.warning("Initial revocation feed poll failed: %s", err)
            interval = self.config.revocation_poll_interval
            self._tasks = [
                asyncio.create_task(self._delayed_poll(interval)),
                asyncio.create_task(self.decisions.run()),
            ]
            self._started = True
            logger.info("Enforcement started for audience %s", self.config.audience)

    async def _delayed_poll(self, interval: float) -> None:
        await asyncio.sleep(interval)
        await self.revocations.run(interval)

    async def aclose(self) -> None:
        """Stop the background tasks, send the queued decisions once, close HTTP."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

        try:
            await self.decisions.flush()
        except httpx.HTTPError as err:
            logger.error(
                "Dropped %d audit decisions at shutdown: %s", len(self.decisions), err
            )
        if self._own_http:
            await self._http.aclose()
        self._started = False
        logger.info("Enforcement stopped for audience %s", self.config.audience)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        await self.app(scope, wrapped_receive, send)

    # -- requests -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind != "http":
            # WebSocket and other protocols carry no DPoP proof: fail closed.
            await send({"type": "websocket.close", "code": 1008})
            return

        if not self._started:
            await self.start()
        if not self.decisions.reserve():
            await self._send_denied(
                send,
                _Denied(
                    503,
                    "temporarily_unavailable",
                    "The audit buffer is full; retry later.",
                    "audit buffer full",
                    challenge=False,
                ),
            )
            return

        try:
            verified = await self._authorize(scope)
        except _Denied as denied:
            self._record(scope, denied.token, denied.status, "deny", denied.reason)
            await self._send_denied(send, denied)
            return
        except Exception:
            self.decisions.release()
            raise

        await self._call_app(scope, receive, send, verified)

    async def _call_app(
        self, scope: Scope, receive: Receive, send: Send, verified: VerifiedToken
    ) -> None:
        state = RequestState()
        scope[PRINCIPAL_KEY] = verified.principal
        scope[STATE_KEY] = state
        status = 500
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal status, started
            # Once authorize_detail has denied, the framework's own error response
            # (a 500 from Starlette's ServerErrorMiddleware) is replaced by the 403.
            if state.forbidden is not None:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as err:
            forbidden = state.forbidden
            if forbidden is None and isinstance(err, ForbiddenError):
                forbidden = err
            if forbidden is None or started:
                # The request was authorized and then failed in the application,
                # so the decision stays "allow" and the outcome names the failure.
                self._record(
                    scope,
                    verified,
                    500,
                    "allow",
                    f"application raised {type(err).__name__}",
                    outcome=OUTCOME_ERROR,
                )
                raise
            state.forbidden = forbidden

        forbidden = state.forbidden
        if forbidden is not None and not started:
            denied = _Denied(
                403,
                forbidden.error,
                forbidden.wire_description,
                forbidden.reason or forbidden.wire_description,
            )
            self._record(scope, verified, 403, "deny", denied.reason)
            await self._send_denied(send, denied)
            return
        self._record(scope, verified, status, "allow", "rule and scopes satisfied")

    async def _authorize(self, scope: Scope) -> VerifiedToken:
        token, proof = self._credentials(scope)
        now = self._clock()
        key = self.tokens.key_of(token)
        verified = self.tokens.get(key, now)
        if verified is None:
            verified = await self._verify_token(token.decode("latin-1"), now)
            self.tokens.put(key, verified, float(verified.claims.exp))

        method = scope["method"]
        config = self.config
        try:
            jkt = verify_dpop_proof_jkt(
                proof,
                htm=method,
                htu=request_url(scope, config.public_url),
                now=now,
                expected_ath=verified.ath,
                max_age=config.dpop_max_age,
                replay=self._replay,
                leeway=config.leeway,
                algorithms=config.algorithms,
            )
        except JOSEError as err:
            raise _Denied(
                401, "invalid_dpop_proof", "The DPoP proof is invalid.", str(err)
            ) from err
        if not secrets.compare_digest(jkt, verified.claims.cnf_jkt):
            raise _Denied(
                401,
                "invalid_dpop_proof",
                "The DPoP proof key is not the key the token is bound to.",
                "proof jkt differs from cnf.jkt",
            )

        try:
            self._check_revocation(verified, now)
            rule = self._find_rule(method, scope.get("path", "/"))
            self._check_rule(rule, verified.principal)
        except _Denied as denied:
            denied.token = verified
            raise
        return verified

    def _credentials(self, scope: Scope) -> tuple[bytes, str]:
        # One pass over the headers finds both, and each may appear only once.
        # The token stays bytes, because a cached token is only hashed.
        authorizations: list[bytes] = []
        proofs: list[bytes] = []
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"authorization":
                authorizations.append(value)
            elif name == b"dpop":
                proofs.append(value)

        if not authorizations:
            raise _Denied(
                401,
                "invalid_token",
                "The request has no access token.",
                "no Authorization header",
            )
        if len(authorizations) > 1:
            raise _Denied(
                400,
                "invalid_request",
                "The request has more than one Authorization header.",
                "repeated Authorization header",
            )

        scheme, _, token = authorizations[0].partition(b" ")
        token = token.strip()
        if scheme.lower() == b"bearer":
            # Every agentiam access token is DPoP-bound (RFC 9449 section 7.1).
            raise _Denied(
                401,
                "invalid_token",
                "The access token is DPoP-bound; use the DPoP scheme.",
                "bound token sent as Bearer",
            )
        if scheme.lower() != b"dpop" or not token:
            raise _Denied(
                401,
                "invalid_token",
                "The Authorization header must be 'DPoP <token>'.",
                "unsupported Authorization scheme",
            )

        if len(proofs) != 1:
            raise _Denied(
                401,
                "invalid_dpop_proof",
                "The request must carry exactly one DPoP header.",
                f"{len(proofs)} DPoP headers",
            )
        return token, proofs[0].decode("latin-1")

    async def _verify_token(self, token: str, now: float) -> VerifiedToken:
        """Verify a token that is not in the cache: its signature and its claims."""
        try:
            kid = unverified_header(token).get("kid")
            if isinstance(kid, str):
                await self.jwks.ensure(kid)
            claims = verify_access_token(
                token,
                self.jwks.lookup,
                issuer=self.config.issuer,
                audience=self.config.audience,
                now=now,
                leeway=self.config.leeway,
            )
        except (TokenError, JOSEError) as err:
            raise _Denied(
                401, "invalid_token", "The access token is invalid.", str(err)
            ) from err
        except JWKSError as err:
            logger.warning("Failed to load the issuer keys: %s", err)
            raise _Denied(
                503,
                "temporarily_unavailable",
                "The issuer keys are unavailable; retry later.",
                str(err),
                challenge=False,
            ) from err
        return verified_token(token, claims)

    def _check_revocation(self, verified: VerifiedToken, now: float) -> None:
        if not self.revocations.is_fresh(now):
            raise _Denied(
                503,
                "temporarily_unavailable",
                "The revocation list is out of date; retry later.",
                "revocation feed stale",
                challenge=False,
            )
        revoked = self.revocations.first_revoked(verified.revocation_ids)
        if revoked is not None:
            raise _Denied(
                401,
                "invalid_token",
                "The access token has been revoked.",
                f"revoked id {revoked}",
            )

    def _find_rule(self, method: str, path: str) -> Rule | None:
        for rule in self._rules:
            if rule.matches(method, path):
                return rule
        return None

    @staticmethod
    def _check_rule(rule: Rule | None, principal: Principal) -> None:
        if rule is None:
            raise _Denied(
                403,
                "insufficient_scope",
                "No rule allows this request.",
                "no matching rule",
            )

        if not principal.scopes.issuperset(rule.scopes):
            missing = [s for s in rule.scopes if s not in principal.scopes]
            raise _Denied(
                403,
                "insufficient_scope",
                "The access token lacks a required scope.",
                f"missing scope {' '.join(missing)}",
                scope=" ".join(rule.scopes),
            )

        detail_type = rule.detail_type
        if detail_type is not None and not any(
            d.get("type") == detail_type for d in principal.authorization_details
        ):
            raise _Denied(
                403,
                "insufficient_scope",
                f"The access token has no '{detail_type}' authorization.",
                f"missing authorization_details type {detail_type}",
            )

    # -- responses and audit --------------------------------------------------------

    async def _send_denied(self, send: Send, denied: _Denied) -> None:
        challenge = None
        if denied.challenge:
            # A request without credentials gets a challenge without an error code
            # (RFC 6750 section 3.1).
            bare = denied.reason == "no Authorization header"
            challenge = www_authenticate(
                self._realm,
                self._algs,
                None if bare else denied.error,
                None if bare else denied.description,
                denied.scope,
            )
        await send_json_error(
            send, denied.status, denied.error, denied.description, challenge
        )

    def _record(
        self,
        scope: Scope,
        verified: VerifiedToken | None,
        status: int,
        decision: str,
        reason: str,
        *,
        outcome: str | None = None,
    ) -> None:
        # The members that name the caller are built once per token, in
        # VerifiedToken, and copying them is the cheapest way to start a record.
        caller = NO_CALLER if verified is None else verified.record_fields
        record: dict[str, Any] = caller.copy()
        record["ver"] = DECISION_VERSION
        record["id"] = new_decision_id()
        record["time"] = self._clock()
        record["audience"] = self.config.audience
        record["decision"] = decision
        record["reason"] = reason
        record["method"] = scope.get("method")
        record["path"] = scope.get("path")
        record["status"] = status
        # Without "outcome" the audit log derives it from the decision.
        if outcome is not None:
            record["outcome"] = outcome
        self.decisions.submit(record)
