"""Agent, an attested agent instance: its key, its JWT-SVID and its OAuth calls."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from agentiam.client._wire import dpop_headers, error_from_response, send
from agentiam.client.auth import DPoPAuth
from agentiam.client.errors import (
    ClientError,
    ExpiredTokenError,
    ProtocolError,
)
from agentiam.client.tokens import (
    DelegatedToken,
    decode_unverified_claims,
    delegated_token_from_response,
)
from agentiam.jose import SigningKey, jwk_thumbprint, sign_jws

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105

#: Seconds added to the CIBA polling interval on each ``slow_down`` (CIBA section 11).
SLOW_DOWN_STEP = 5.0
#: Renew the SVID when less than this many seconds (or half its lifetime) remain.
SVID_RENEW_BEFORE = 60.0
#: Lifetime of a class-key assertion used for attestation, in seconds.
ASSERTION_TTL = 60

Sleep = Callable[[float], Awaitable[None]]


class Agent:
    """An agent instance: an ES256 key, the JWT-SVID bound to it and the server.

    Build one with ``Agent.attest`` (a root agent) or ``Agent.spawn`` (a sub-agent).
    The SVID is renewed before it expires: a root agent attested with a join token
    renews it at ``POST /v1/agents/renew`` with the same SPIFFE ID and key, a root
    agent attested with a class key attests again, and a sub-agent has its parent
    spawn it again with the same key.
    """

    def __init__(
        self,
        server: str,
        agent_class: str,
        key: SigningKey,
        svid: str,
        *,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        renew: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.agent_class = agent_class
        self.key = key
        self.http = http
        self._clock = clock
        self._sleep = sleep
        self._renew = renew
        self._set_svid(svid)

    # -- construction -------------------------------------------------------------

    @classmethod
    async def attest(
        cls,
        server: str,
        agent_class: str,
        *,
        http: httpx.AsyncClient,
        join_token: str | None = None,
        assertion_key: SigningKey | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> Agent:
        """Generate an instance key and attest it at ``POST /v1/agents/attest``.

        Exactly one of ``join_token`` (single use, made by the class owner or an
        admin) or ``assertion_key`` (the agent class key) proves the right to the
        class.

        Raises:
            ValueError: neither or both of ``join_token`` and ``assertion_key``.
            ServerError: the server rejected the attestation.
        """
        if (join_token is None) == (assertion_key is None):
            raise ValueError("Pass exactly one of 'join_token' or 'assertion_key'.")

        base = server.rstrip("/")
        key = SigningKey.generate("ES256")

        async def attest_once() -> str:
            return await _attest(
                http, base, agent_class, key, clock(), join_token, assertion_key
            )

        svid = await attest_once()
        agent = cls(base, agent_class, key, svid, http=http, clock=clock, sleep=sleep)
        # A join token is single use, so that agent renews its SVID instead.
        agent._renew = attest_once if assertion_key is not None else agent._renew_svid
        return agent

    # -- the SVID -------------------------------------------------------------------

    def _set_svid(self, svid: str) -> None:
        claims = decode_unverified_claims(svid)
        sub = claims.get("sub")
        exp = claims.get("exp")
        iat = claims.get("iat", exp)
        if not isinstance(sub, str) or not isinstance(exp, int | float):
            raise ProtocolError("The server returned an SVID without 'sub' or 'exp'.")

        self._svid = svid
        self.spiffe_id: str = sub
        self.svid_expires_at = float(exp)
        lifetime = float(exp) - float(iat if isinstance(iat, int | float) else exp)
        self._renew_before = min(SVID_RENEW_BEFORE, max(lifetime, 0.0) / 2)

    async def _renew_svid(self) -> str:
        """POST the current SVID to ``/v1/agents/renew`` and return the new one."""
        url = f"{self.server}/v1/agents/renew"
        headers = dpop_headers(self.key, "POST", url, self._clock(), self._svid)
        body = await send(self.http, url, headers, json_body={})
        return _svid_of(body, url)

    async def current_svid(self) -> str:
        """Return the SVID, renewing it first when it is close to expiry.

        Raises:
            ClientError: the SVID expired and this agent has no way to renew it.
        """
        now = self._clock()
        if now < self.svid_expires_at - self._renew_before:
            return self._svid

        if self._renew is not None:
            self._set_svid(await self._renew())
        elif now >= self.svid_expires_at:
            raise ClientError(
                f"The SVID of '{self.spiffe_id}' expired and cannot be renewed; "
                "attest a new instance."
            )
        return self._svid

    # -- delegation -----------------------------------------------------------------

    async def request_approval(
        self,
        *,
        login_hint: str,
        scope: str,
        audience: Sequence[str],
        binding_message: str,
        authorization_details: Sequence[dict[str, Any]] | None = None,
        max_depth: int | None = None,
        expires_in: int | None = None,
    ) -> DelegatedToken:
        """Ask a human for a grant over CIBA and poll until it is decided.

        POSTs ``/bc-authorize`` with the SVID and a DPoP proof, then polls ``/token``
        honouring ``interval`` and adding 5 s on each ``slow_down``. ``expires_in``
        is the requested grant lifetime in seconds (``requested_expiry``).

        Raises:
            AccessDeniedError: the human denied the request.
            ExpiredTokenError: the request expired before the human decided.
            ServerError: any other error from the server.
        """
        # Each audience is its own ``audience`` parameter (RFC 8693 section 2.1).
        form: dict[str, str | list[str]] = {
            "login_hint": login_hint,
            "scope": scope,
            "audience": list(audience),
            "binding_message": binding_message,
        }
        if authorization_details is not None:
            form["authorization_details"] = json.dumps(list(authorization_details))
        if max_depth is not None:
            form["max_depth"] = str(max_depth)
        if expires_in is not None:
            form["requested_expiry"] = str(expires_in)

        url = f"{self.server}/bc-authorize"
        svid = await self.current_svid()
        headers = dpop_headers(self.key, "POST", url, self._clock(), svid)
        body = await send(self.http, url, headers, form=form)

        auth_req_id = body.get("auth_req_id")
        if not isinstance(auth_req_id, str):
            raise ProtocolError("The /bc-authorize response has no 'auth_req_id'.")
        interval = _number(body.get("interval"), 5.0)
        deadline = self._clock() + _number(body.get("expires_in"), 600.0)
        return await self._poll_ciba(auth_req_id, interval, deadline)

    async def _poll_ciba(
        self, auth_req_id: str, interval: float, deadline: float
    ) -> DelegatedToken:
        url = f"{self.server}/token"
        form = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
        while True:
            await self._sleep(interval)
            if self._clock() > deadline + interval:
                raise ExpiredTokenError(
                    "expired_token",
                    "The approval request expired before the human decided.",
                    400,
                )

            headers = dpop_headers(self.key, "POST", url, self._clock())
            response = await self.http.post(url, headers=headers, data=form)
            if response.status_code < 400:
                return delegated_token_from_response(response.json(), self._clock())

            error = error_from_response(response)
            if error.error == "authorization_pending":
                continue
            if error.error == "slow_down":
                interval += SLOW_DOWN_STEP
                continue
            raise error

    async def exchange(
        self,
        subject_token: DelegatedToken | str,
        *,
        scope: str | None = None,
        audience: Sequence[str] | str | None = None,
        authorization_details: Sequence[dict[str, Any]] | None = None,
        lifetime: int | None = None,
        purpose: str | None = None,
        task_id: str | None = None,
    ) -> DelegatedToken:
        """Exchange a subject token for a narrower one acting as this agent.

        RFC 8693 token exchange at ``/token``: the actor token is this agent's SVID,
        the proof (without ``ath``) is signed by this agent's key, and ``lifetime``
        is sent as ``requested_expiry`` in seconds. A sequence of audiences is
        sent as one ``audience`` parameter per value.

        Raises:
            ServerError: the server rejected the exchange, e.g. ``invalid_scope``.
        """
        subject = _token_text(subject_token)
        form: dict[str, str | list[str]] = {
            "grant_type": TOKEN_EXCHANGE_GRANT_TYPE,
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "actor_token": await self.current_svid(),
            "actor_token_type": JWT_TOKEN_TYPE,
        }
        if scope is not None:
            form["scope"] = scope
        if audience is not None:
            # Several audiences go as repeated parameters (RFC 8693 section 2.1).
            form["audience"] = audience if isinstance(audience, str) else list(audience)
        if authorization_details is not None:
            form["authorization_details"] = json.dumps(list(authorization_details))
        if lifetime is not None:
            form["requested_expiry"] = str(lifetime)
        if purpose is not None:
            form["purpose"] = purpose
        if task_id is not None:
            form["task_id"] = task_id

        url = f"{self.server}/token"
        headers = dpop_headers(self.key, "POST", url, self._clock())
        body = await send(self.http, url, headers, form=form)
        return delegated_token_from_response(body, self._clock())

    async def spawn(self, agent_class: str, token: DelegatedToken | str) -> Agent:
        """Create a sub-agent: a new key and an SVID from ``POST /v1/agents/spawn``.

        The request is authenticated with this agent's access token and proof. The
        child's public JWK is sent in the body, so its SVID is bound to the child key.

        Raises:
            ServerError: the server rejected the spawn, e.g. ``invalid_token``.
        """
        child_key = SigningKey.generate("ES256")
        token_text = _token_text(token)

        async def spawn_once() -> str:
            return await self._spawn_svid(agent_class, child_key, token_text)

        svid = await spawn_once()
        return Agent(
            self.server,
            agent_class,
            child_key,
            svid,
            http=self.http,
            clock=self._clock,
            sleep=self._sleep,
            renew=spawn_once,
        )

    async def _spawn_svid(
        self, agent_class: str, child_key: SigningKey, token: str
    ) -> str:
        url = f"{self.server}/v1/agents/spawn"
        # The server takes the child's task from the parent's token.
        payload: dict[str, Any] = {
            "agent_class": agent_class,
            "public_jwk": child_key.public_jwk(),
        }

        headers = dpop_headers(self.key, "POST", url, self._clock(), token)
        body = await send(self.http, url, headers, json_body=payload)
        return _svid_of(body, url)

    async def close_task(
        self, task_id: str, token: DelegatedToken | str
    ) -> dict[str, Any]:
        """Close a task with ``POST /v1/tasks/{id}/close``; its subtree is revoked.

        Returns:
            The server's JSON response.
        """
        url = f"{self.server}/v1/tasks/{task_id}/close"
        token_text = _token_text(token)
        headers = dpop_headers(self.key, "POST", url, self._clock(), token_text)
        return await send(self.http, url, headers, json_body={})

    def auth(self, token: DelegatedToken | str) -> DPoPAuth:
        """Return an httpx.Auth sending ``token`` with a fresh proof per request."""
        return DPoPAuth(self.key, token, clock=self._clock)


async def _attest(
    http: httpx.AsyncClient,
    base: str,
    agent_class: str,
    key: SigningKey,
    now: float,
    join_token: str | None,
    assertion_key: SigningKey | None,
) -> str:
    """POST one attestation and return the SVID."""
    payload: dict[str, Any] = {"agent_class": agent_class}
    if join_token is not None:
        payload["join_token"] = join_token
    if assertion_key is not None:
        payload["assertion"] = _class_assertion(
            assertion_key, agent_class, key, base, now
        )

    url = f"{base}/v1/agents/attest"
    headers = dpop_headers(key, "POST", url, now)
    body = await send(http, url, headers, json_body=payload)
    return _svid_of(body, url)


def _class_assertion(
    class_key: SigningKey, agent_class: str, key: SigningKey, issuer: str, now: float
) -> str:
    """Sign a short-lived assertion binding the instance key to the agent class."""
    claims = {
        "ver": 1,
        "iss": agent_class,
        "sub": agent_class,
        "aud": issuer,
        "iat": int(now),
        "exp": int(now) + ASSERTION_TTL,
        "jti": secrets.token_urlsafe(16),
        "cnf": {"jkt": jwk_thumbprint(key.public_jwk())},
    }
    return sign_jws(claims, class_key, typ="JWT")


def _svid_of(body: dict[str, Any], url: str) -> str:
    svid = body.get("svid")
    if not isinstance(svid, str) or not svid:
        raise ProtocolError(f"The response of '{url}' has no 'svid'.")
    return svid


def _token_text(token: DelegatedToken | str) -> str:
    return token.access_token if isinstance(token, DelegatedToken) else token


def _number(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


__all__ = ["Agent"]
