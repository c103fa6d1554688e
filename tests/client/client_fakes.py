"""A fake agentiam server for the SDK unit tests, served by an httpx.MockTransport."""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

import httpx

from agentiam.client.tokens import decode_unverified_claims
from agentiam.jose import (
    ReplayCache,
    SigningKey,
    jwk_thumbprint,
    sign_jws,
    verify_dpop_proof,
)

SERVER = "http://issuer.test"
NOW = 1_800_000_000.0


class Clock:
    """A clock that the fake sleep advances."""

    def __init__(self) -> None:
        self.now = NOW
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeServer:
    """The attest, CIBA, token, spawn and task endpoints, checking DPoP proofs."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.key = SigningKey.generate("ES256", kid="k1")
        self.replay = ReplayCache(1000)
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        # Every (name, value) pair of each form body, repeats kept, by path.
        self.form_pairs: list[tuple[str, list[tuple[str, str]]]] = []
        self.poll_answers: list[str] = []
        self.exchange_error: str | None = None
        self.svid_ttl = 300

    def svid(self, jkt: str, agent_class: str) -> str:
        now = self.clock.now
        claims = {
            "ver": 1,
            "iss": SERVER,
            "aud": [SERVER],
            "iat": now,
            "exp": now + self.svid_ttl,
            "jti": secrets.token_urlsafe(8),
            "sub": f"spiffe://example.org/agent/{agent_class}/{secrets.token_hex(4)}",
            "cnf": {"jkt": jkt},
        }
        return sign_jws(claims, self.key, typ="JWT")

    def access_token(self, jkt: str, scope: str) -> str:
        now = self.clock.now
        claims = {
            "iss": SERVER,
            "exp": now + 300,
            "scope": scope,
            "task": {"id": "t1", "path": ["t1"]},
            "cnf": {"jkt": jkt},
        }
        return sign_jws(claims, self.key, typ="at+jwt")

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        path = request.url.path
        self.requests.append((path, body, dict(request.headers)))
        if request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            self.form_pairs.append((path, parse_qsl(request.content.decode())))

        authorization = request.headers.get("authorization")
        token = authorization.split(" ", 1)[1] if authorization else None
        proof = verify_dpop_proof(
            request.headers["dpop"],
            htm=request.method,
            htu=str(request.url),
            now=self.clock.now,
            access_token=token,
            replay=self.replay,
        )

        if path == "/v1/agents/attest":
            return httpx.Response(
                201, json={"svid": self.svid(proof.jkt, body["agent_class"])}
            )
        if path == "/v1/agents/renew":
            agent_class = decode_unverified_claims(token or "")["sub"].split("/")[-2]
            return httpx.Response(200, json={"svid": self.svid(proof.jkt, agent_class)})
        if path == "/v1/agents/spawn":
            jkt = jwk_thumbprint(body["public_jwk"])
            return httpx.Response(
                201, json={"svid": self.svid(jkt, body["agent_class"])}
            )
        if path == "/bc-authorize":
            return httpx.Response(
                200, json={"auth_req_id": "req-1", "expires_in": 120, "interval": 2}
            )
        if path == "/token":
            return self._token(body, proof.jkt)
        if path.startswith("/v1/tasks/") and path.endswith("/close"):
            return httpx.Response(200, json={"revoked": ["t1"]})
        return httpx.Response(404, json={"error": "not_found"})

    def _token(self, form: dict[str, Any], jkt: str) -> httpx.Response:
        if form["grant_type"] == "urn:openid:params:grant-type:ciba":
            answer = self.poll_answers.pop(0) if self.poll_answers else "ok"
            if answer != "ok":
                return httpx.Response(
                    400, json={"error": answer, "error_description": answer}
                )
            scope = "tickets refunds"
        else:
            if self.exchange_error:
                return httpx.Response(
                    400,
                    json={
                        "error": self.exchange_error,
                        "error_description": "The requested scope is not allowed.",
                    },
                )
            scope = form.get("scope", "tickets")
        return httpx.Response(
            200,
            json={
                "access_token": self.access_token(jkt, scope),
                "token_type": "DPoP",
                "expires_in": 300,
                "scope": scope,
            },
        )

    @staticmethod
    def _body(request: httpx.Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            return json.loads(request.content)
        if content_type.startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(request.content.decode()))
        return {}
