"""A fake agentiam issuer, a Starlette resource server and signed test tokens."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentiam.enforce import (
    EnforcementConfig,
    EnforcementMiddleware,
    Rule,
    authorize_detail,
)
from agentiam.jose import SigningKey, create_dpop_proof, sign_jws

ISSUER = "http://issuer.test"
AUDIENCE = "https://api.test"
ORCHESTRATOR = "spiffe://example.org/agent/support-orchestrator/i1"
WORKER = "spiffe://example.org/agent/refund-worker/i2"
REFUND_DETAIL = {
    "type": "refund",
    "actions": ["create"],
    "max_amount": {"amount": "100.00", "currency": "EUR"},
}


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeIssuer:
    """The agentiam endpoints the middleware calls, served by a MockTransport."""

    def __init__(self) -> None:
        self.key = SigningKey.generate("ES256", kid="k1")
        self.published = [self.key]
        self.entries: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.feed_up = True
        self.audit_up = True
        self.auth_headers: list[str] = []

    def add_revocation(self, kind: str, revoked_id: str) -> None:
        self.entries.append(
            {
                "seq": len(self.entries) + 1,
                "kind": kind,
                "id": revoked_id,
                "expires_at": 2_000_000_000.0,
            }
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
            )
        if path == "/jwks":
            self.jwks_fetches += 1
            keys = [k.verification_key().to_jwk() for k in self.published]
            return httpx.Response(200, json={"keys": keys})
        if path == "/v1/revocations":
            return self._feed(request)
        if path == "/v1/audit/decisions":
            self.auth_headers.append(request.headers.get("authorization", ""))
            if not self.audit_up:
                return httpx.Response(503)
            self.batches.append(json.loads(request.content))
            return httpx.Response(202, json={})
        return httpx.Response(404)

    def _feed(self, request: httpx.Request) -> httpx.Response:
        self.auth_headers.append(request.headers.get("authorization", ""))
        if not self.feed_up:
            return httpx.Response(503)
        seq = len(self.entries)
        if request.headers.get("if-none-match") == f'"{seq}"':
            return httpx.Response(304)
        since = int(request.url.params["since"])
        body = {"seq": seq, "entries": [e for e in self.entries if e["seq"] > since]}
        return httpx.Response(200, json=body, headers={"ETag": f'"{seq}"'})


async def list_ticket(request: Request) -> JSONResponse:
    principal = request.scope["agentiam.principal"]
    return JSONResponse(
        {
            "human": principal.human,
            "actors": list(principal.actors),
            "task_path": list(principal.task_path),
            "grant_id": principal.grant_id,
            "ticket": request.path_params["id"],
        }
    )


async def create_refund(request: Request) -> JSONResponse:
    body = await request.json()
    authorize_detail(
        request,
        type="refund",
        action="create",
        amount=Decimal(body["amount"]),
        currency=body["currency"],
    )
    return JSONResponse({"refunded": body["amount"]}, status_code=201)


RULES = [
    Rule("GET", "/tickets/{id}", scopes=("tickets",)),
    Rule("POST", "/refunds", scopes=("refunds",), detail_type="refund"),
    Rule("DELETE", "/tickets/{id}", scopes=("admin",)),
]


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/tickets/{id}", list_ticket, methods=["GET", "DELETE"]),
            Route("/refunds", create_refund, methods=["POST"]),
            Route("/unruled", list_ticket, methods=["GET"]),
        ]
    )


class World:
    """The middleware over an app, its fake issuer, a clock and an agent key."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.clock = Clock()
        self.issuer = FakeIssuer()
        self.agent_key = SigningKey.generate("ES256")
        settings: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "client_id": "support-api",
            "client_secret": "s3cret",
            "rules": RULES,
            "clock": self.clock,
            "revocation_poll_interval": 3600.0,
            "audit_flush_interval": 3600.0,
        }
        settings.update(config)
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self.issuer.handle))
        self.middleware = EnforcementMiddleware(
            app, config=EnforcementConfig(**settings), http=self.http
        )
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.middleware), base_url=AUDIENCE
        )

    def token(self, key: SigningKey | None = None, **overrides: Any) -> str:
        now = self.clock.now
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": ISSUER,
            "aud": [AUDIENCE],
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(8),
            "sub": "alice",
            "client_id": WORKER,
            "scope": "tickets refunds",
            "act": {"sub": WORKER, "act": {"sub": ORCHESTRATOR}},
            "depth": 2,
            "grant": {"id": "g1", "receipt_hash": "rh1"},
            "task": {"id": "t2", "path": ["t1", "t2"]},
            "derived_from": ["j0"],
            "authorization_details": [REFUND_DETAIL],
            "cnf": {"jkt": self.agent_key.thumbprint()},
        }
        claims.update(overrides)
        return sign_jws(claims, key or self.issuer.key, typ="at+jwt")

    def headers(
        self, token: str, method: str, path: str, **proof: Any
    ) -> dict[str, str]:
        settings: dict[str, Any] = {
            "htm": method,
            "htu": AUDIENCE + path,
            "now": self.clock.now,
            "access_token": token,
        }
        settings.update(proof)
        key = settings.pop("key", self.agent_key)
        return {
            "Authorization": f"DPoP {token}",
            "DPoP": create_dpop_proof(key, **settings),
        }

    async def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = self.headers(token, method, path) if token else {}
        return await self.api.request(method, path, headers=headers, **kwargs)

    async def close(self) -> None:
        await self.api.aclose()
        await self.middleware.aclose()
        await self.http.aclose()
