"""EnforcementMiddleware in front of a Starlette app with a fake issuer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

import pytest
from enforce_fakes import (
    AUDIENCE,
    ISSUER,
    ORCHESTRATOR,
    WORKER,
    World,
    starlette_app,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentiam.jose import SigningKey, sign_jws
from agentiam.jose._base64url import b64url_decode, b64url_encode
from agentiam.jose.jws import sign_bytes, sign_jws_with_header

pytestmark = pytest.mark.anyio


def challenge(response) -> str:
    return response.headers["www-authenticate"]


async def test_valid_token_allowed(world: World) -> None:
    response = await world.call("GET", "/tickets/T-1", world.token())
    assert response.status_code == 200
    assert response.json() == {
        "human": "alice",
        "actors": [WORKER, ORCHESTRATOR],
        "task_path": ["t1", "t2"],
        "grant_id": "g1",
        "ticket": "T-1",
    }


async def test_missing_token_challenged(world: World) -> None:
    response = await world.call("GET", "/tickets/T-1")
    assert response.status_code == 401
    assert challenge(response) == f'DPoP realm="{AUDIENCE}", algs="ES256 EdDSA"'
    assert response.json()["error"] == "invalid_token"


async def test_bearer_scheme_rejected(world: World) -> None:
    token = world.token()
    headers = world.headers(token, "GET", "/tickets/T-1")
    headers["Authorization"] = f"Bearer {token}"
    response = await world.api.get("/tickets/T-1", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)
    assert "use the DPoP scheme" in response.json()["error_description"]


@pytest.mark.parametrize(
    "proof",
    [
        {"htm": "POST"},
        {"htu": "https://other.test/tickets/T-1"},
        {"access_token": "another-token"},
        {"key": SigningKey.generate("ES256")},
        {"now": 1_800_000_000.0 - 600},
    ],
    ids=["wrong-htm", "wrong-htu", "wrong-ath", "other-key", "old-iat"],
)
async def test_bad_proof_rejected(world: World, proof: dict) -> None:
    token = world.token()
    headers = world.headers(token, "GET", "/tickets/T-1", **proof)
    response = await world.api.get("/tickets/T-1", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenge(response)


async def test_missing_proof_rejected(world: World) -> None:
    token = world.token()
    response = await world.api.get(
        "/tickets/T-1", headers={"Authorization": f"DPoP {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_dpop_proof"


async def test_replayed_proof_rejected(world: World) -> None:
    token = world.token()
    headers = world.headers(token, "GET", "/tickets/T-1")
    first = await world.api.get("/tickets/T-1", headers=headers)
    second = await world.api.get("/tickets/T-1", headers=headers)
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json()["error"] == "invalid_dpop_proof"


async def test_expired_token_rejected(world: World) -> None:
    token = world.token(exp=world.clock.now - 31)
    response = await world.call("GET", "/tickets/T-1", token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)


async def test_cached_token_expires(world: World) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200
    world.clock.now += 331
    await world.middleware.revocations.poll()
    response = await world.call("GET", "/tickets/T-1", token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_wrong_audience_rejected(world: World) -> None:
    token = world.token(aud=["https://elsewhere.test"])
    response = await world.call("GET", "/tickets/T-1", token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    ("kind", "revoked_id"),
    [
        ("task", "t1"),
        ("task", "t2"),
        ("grant", "g1"),
        ("instance", ORCHESTRATOR),
        ("instance", WORKER),
        ("token", "j0"),
    ],
    ids=["root-task", "task", "grant", "parent-actor", "acting", "derived-from"],
)
async def test_revoked_token_rejected(world: World, kind: str, revoked_id: str) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200

    world.issuer.add_revocation(kind, revoked_id)
    await world.middleware.revocations.poll()
    response = await world.call("GET", "/tickets/T-1", token)
    assert response.status_code == 401
    assert response.json()["error_description"] == "The access token has been revoked."


async def test_feed_polled_with_etag_and_basic(world: World) -> None:
    await world.call("GET", "/tickets/T-1", world.token())
    await world.middleware.revocations.poll()
    assert world.middleware.revocations.seq == 0
    assert world.issuer.auth_headers[0].startswith("Basic ")


async def test_stale_feed_fails_closed(world: World) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200

    world.issuer.feed_up = False
    world.clock.now += 61
    with pytest.raises(Exception, match="HTTP 503"):
        await world.middleware.revocations.poll()
    response = await world.call("GET", "/tickets/T-1", world.token())
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


async def test_unknown_kid_refetch_rate_limited(world: World) -> None:
    await world.call("GET", "/tickets/T-1", world.token())
    assert world.issuer.jwks_fetches == 1

    rotated = SigningKey.generate("ES256", kid="k2")
    world.issuer.published.append(rotated)
    early = await world.call("GET", "/tickets/T-1", world.token(key=rotated))
    assert early.status_code == 401
    assert world.issuer.jwks_fetches == 1

    world.clock.now += 11
    response = await world.call("GET", "/tickets/T-1", world.token(key=rotated))
    assert response.status_code == 200
    assert world.issuer.jwks_fetches == 2


async def test_unknown_kid_burst_one_fetch(world: World) -> None:
    await world.call("GET", "/tickets/T-1", world.token())
    world.clock.now += 11
    forged = [SigningKey.generate("ES256", kid=f"forged-{i}") for i in range(20)]
    responses = await asyncio.gather(
        *(world.call("GET", "/tickets/T-1", world.token(key=k)) for k in forged)
    )
    assert {r.status_code for r in responses} == {401}
    assert world.issuer.jwks_fetches == 2


async def test_insufficient_scope_rejected(world: World) -> None:
    response = await world.call("DELETE", "/tickets/T-1", world.token())
    assert response.status_code == 403
    assert challenge(response) == (
        f'DPoP realm="{AUDIENCE}", error="insufficient_scope", '
        'error_description="The access token lacks a required scope.", '
        'scope="admin", algs="ES256 EdDSA"'
    )


async def test_no_rule_denied(world: World) -> None:
    response = await world.call("GET", "/unruled", world.token())
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "No rule allows this request.",
    }


async def test_detail_within_limit_allowed(world: World) -> None:
    response = await world.call(
        "POST", "/refunds", world.token(), json={"amount": "80", "currency": "EUR"}
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        ("120", "EUR", "Amount '120' EUR exceeds the 'refund' limit '100.00' EUR."),
        ("100.01", "EUR", "Amount '100.01' EUR exceeds the 'refund' limit"),
        ("80", "USD", "Currency 'USD' does not match the 'refund' limit currency"),
    ],
    ids=["over", "just-over", "currency"],
)
async def test_detail_over_limit_denied(
    world: World, amount: str, currency: str, reason: str
) -> None:
    response = await world.call(
        "POST", "/refunds", world.token(), json={"amount": amount, "currency": currency}
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in challenge(response)
    assert reason in response.json()["error_description"]

    await world.middleware.decisions.flush()
    decision = world.issuer.batches[-1]["decisions"][-1]
    assert decision["decision"] == "deny"
    assert reason in decision["reason"]


async def test_detail_type_required_by_rule(world: World) -> None:
    token = world.token(authorization_details=[{"type": "lookup"}])
    response = await world.call(
        "POST", "/refunds", token, json={"amount": "1", "currency": "EUR"}
    )
    assert response.status_code == 403
    assert "no 'refund' authorization" in response.json()["error_description"]


async def test_decisions_sent_in_batches(world: World) -> None:
    token = world.token()
    await world.call("GET", "/tickets/T-1", token)
    await world.call("GET", "/unruled", token)
    await world.call("GET", "/tickets/T-1")
    await world.middleware.decisions.flush()

    decisions = world.issuer.batches[0]["decisions"]
    assert world.issuer.batches[0]["ver"] == 1
    assert [d["decision"] for d in decisions] == ["allow", "deny", "deny"]
    assert [d["status"] for d in decisions] == [200, 403, 401]
    assert decisions[0]["actors"] == [WORKER, ORCHESTRATOR]
    assert decisions[0]["task_path"] == ["t1", "t2"]
    assert decisions[0]["grant_id"] == "g1"
    assert decisions[0]["receipt_hash"] == "rh1"
    assert decisions[1]["reason"] == "no matching rule"
    assert world.issuer.auth_headers[-1].startswith("Basic ")


async def test_background_flush_sends_batches() -> None:
    world = World(starlette_app(), audit_flush_interval=0.01, audit_batch_size=2)
    try:
        token = world.token()
        for _ in range(3):
            await world.call("GET", "/tickets/T-1", token)
        for _ in range(100):
            if sum(len(b["decisions"]) for b in world.issuer.batches) == 3:
                break
            await asyncio.sleep(0.01)
        assert [len(b["decisions"]) for b in world.issuer.batches] == [2, 1]
    finally:
        await world.close()


async def test_failed_batch_kept_for_retry(world: World) -> None:
    await world.call("GET", "/tickets/T-1", world.token())
    world.issuer.audit_up = False
    with pytest.raises(Exception, match="503"):
        await world.middleware.decisions.flush()
    assert len(world.middleware.decisions) == 1

    world.issuer.audit_up = True
    await world.middleware.decisions.flush()
    assert len(world.issuer.batches[0]["decisions"]) == 1


async def test_full_buffer_fails_closed() -> None:
    world = World(starlette_app(), audit_buffer_size=2)
    try:
        world.issuer.audit_up = False
        token = world.token()
        statuses = [
            (await world.call("GET", "/tickets/T-1", token)).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 503]
    finally:
        world.issuer.audit_up = True
        await world.close()


async def test_lifespan_starts_and_stops(world: World) -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    await world.middleware(
        {"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send
    )
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert world.middleware._tasks == []


async def test_sdk_auth_accepted(world: World) -> None:
    from agentiam.client import DPoPAuth

    auth = DPoPAuth(world.agent_key, world.token(), clock=world.clock)
    first = await world.api.get("/tickets/T-1", auth=auth)
    second = await world.api.get("/tickets/T-2", auth=auth)
    assert first.status_code == 200
    assert second.status_code == 200


async def test_cached_token_checks_ath(world: World) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200

    # The token is cached now, and a proof made for another token must still fail.
    headers = world.headers(token, "GET", "/tickets/T-1", access_token="other")
    response = await world.api.get("/tickets/T-1", headers=headers)
    assert response.status_code == 401
    await world.middleware.decisions.flush()
    decision = world.issuer.batches[-1]["decisions"][-1]
    assert decision["reason"] == "DPoP proof 'ath' does not match the access token"
    assert decision["jti"] is None
    assert decision["actors"] == []


async def test_cached_token_replay_rejected(world: World) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200

    headers = world.headers(token, "GET", "/tickets/T-1")
    assert (await world.api.get("/tickets/T-1", headers=headers)).status_code == 200
    response = await world.api.get("/tickets/T-1", headers=headers)
    assert response.status_code == 401
    await world.middleware.decisions.flush()
    reason = world.issuer.batches[-1]["decisions"][-1]["reason"]
    assert reason.startswith("DPoP proof jti ")
    assert reason.endswith(" was already used")


async def test_cached_token_other_key_rejected(world: World) -> None:
    token = world.token()
    assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200

    other = SigningKey.generate("ES256")
    headers = world.headers(token, "GET", "/tickets/T-1", key=other)
    response = await world.api.get("/tickets/T-1", headers=headers)
    assert response.status_code == 401
    assert response.json()["error_description"] == (
        "The DPoP proof key is not the key the token is bound to."
    )


async def test_eddsa_proof_accepted(world: World) -> None:
    world.agent_key = SigningKey.generate("EdDSA")
    response = await world.call("GET", "/tickets/T-1", world.token())
    assert response.status_code == 200


async def test_decision_records_caller(world: World) -> None:
    token = world.token()
    await world.call("GET", "/tickets/T-1", token)
    await world.call("GET", "/tickets/T-1", token)
    await world.middleware.decisions.flush()

    first, second = world.issuer.batches[0]["decisions"]
    assert first["id"] != second["id"]
    for decision in (first, second):
        assert {name: decision[name] for name in CALLER} == {
            "human": "alice",
            "actors": [WORKER, ORCHESTRATOR],
            "task_path": ["t1", "t2"],
            "grant_id": "g1",
            "receipt_hash": "rh1",
            "jti": decision["jti"],
        }
        assert isinstance(decision["jti"], str)
        assert decision["ver"] == 1
        assert decision["audience"] == AUDIENCE


CALLER = ("human", "actors", "task_path", "grant_id", "receipt_hash", "jti")


async def test_app_error_recorded_as_allow_with_error_outcome() -> None:
    async def ticket(request: Request) -> JSONResponse:
        if request.path_params["id"] == "boom":
            raise RuntimeError("handler failed")
        return JSONResponse({"ticket": request.path_params["id"]})

    app = Starlette(routes=[Route("/tickets/{id}", ticket, methods=["GET"])])
    world = World(app)
    try:
        token = world.token()
        with pytest.raises(RuntimeError, match="handler failed"):
            await world.call("GET", "/tickets/boom", token)
        assert (await world.call("GET", "/tickets/T-1", token)).status_code == 200
        await world.middleware.decisions.flush()
    finally:
        await world.close()

    failed, later = world.issuer.batches[0]["decisions"]
    assert {k: failed[k] for k in ("decision", "outcome", "status", "reason")} == {
        "decision": "allow",
        "outcome": "error",
        "status": 500,
        "reason": "application raised RuntimeError",
    }
    assert later["decision"] == "allow"
    assert "outcome" not in later


def _part(value: object) -> str:
    return b64url_encode(json.dumps(value).encode())


def _signed_raw(world: World, header: str, payload: str) -> str:
    signing_input = (
        f"{b64url_encode(header.encode())}.{b64url_encode(payload.encode())}"
    )
    signature = b64url_encode(sign_bytes(world.issuer.key, signing_input.encode()))
    return f"{signing_input}.{signature}"


def _claims(world: World, **changes: object) -> dict:
    # The claims of World.token, read back from a token it signs.
    payload = world.token(**changes).split(".")[1]
    return json.loads(b64url_decode(payload) or b"")


def _alg_none(world: World) -> str:
    header = _part({"alg": "none", "kid": "k1", "typ": "at+jwt"})
    return f"{header}.{_part(_claims(world))}."


def _hs256_with_public_key(world: World) -> str:
    secret = json.dumps(world.issuer.key.verification_key().to_jwk()).encode()
    signing_input = f"{_part({'alg': 'HS256', 'kid': 'k1', 'typ': 'at+jwt'})}."
    signing_input += _part(_claims(world))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def _with_header(world: World, **members: object) -> str:
    header = {"kid": "k1", "typ": "at+jwt", **members}
    return sign_jws_with_header(_claims(world), world.issuer.key, header)


def _svid(world: World) -> str:
    now = int(world.clock.now)
    claims = {
        "ver": 1,
        "iss": ISSUER,
        "aud": [ISSUER],
        "sub": WORKER,
        "iat": now,
        "exp": now + 300,
        "jti": "svid-1",
        "cnf": {"jkt": world.agent_key.thumbprint()},
    }
    return sign_jws(claims, world.issuer.key, typ="JWT")


def _changed_payload(world: World) -> str:
    header, _, signature = world.token().split(".")
    return (
        f"{header}.{_part(_claims(world, scope='tickets refunds admin'))}.{signature}"
    )


def _not_base64url(world: World) -> str:
    header, payload, signature = world.token().split(".")
    return f"{header}.{payload[:8]}*{payload[9:]}.{signature}"


def _duplicate_claim(world: World) -> str:
    payload = json.dumps(_claims(world))[:-1] + ', "sub": "mallory"}'
    return _signed_raw(world, '{"alg":"ES256","kid":"k1","typ":"at+jwt"}', payload)


def _nested_act(depth: int) -> dict:
    act: dict = {"sub": WORKER}
    for _ in range(depth - 1):
        act = {"sub": WORKER, "act": act}
    return act


NOW = 1_800_000_000
BAD_TOKENS = [
    ("alg-none", _alg_none, "JWS algorithm 'none' is not allowed"),
    ("hs256", _hs256_with_public_key, "JWS algorithm 'HS256' is not allowed"),
    (
        "unknown-kid",
        lambda w: w.token(key=SigningKey.generate("ES256", kid="k9")),
        "JWS kid 'k9' is not a known key",
    ),
    (
        "jwk",
        lambda w: _with_header(w, jwk=w.agent_key.verification_key().to_jwk()),
        "JWS header member 'jwk' is not allowed",
    ),
    (
        "jku",
        lambda w: _with_header(w, jku="https://attacker.test/jwks"),
        "JWS header member 'jku' is not allowed",
    ),
    (
        "x5u",
        lambda w: _with_header(w, x5u="https://attacker.test/cert.pem"),
        "JWS header member 'x5u' is not allowed",
    ),
    (
        "crit",
        lambda w: _with_header(w, crit=["urn:example:unknown"]),
        "JWS header member 'crit' is not allowed",
    ),
    (
        "id-token-typ",
        lambda w: sign_jws(_claims(w), w.issuer.key, typ="JWT"),
        "JWS typ 'JWT' is not the expected 'at+jwt'",
    ),
    ("svid", _svid, "JWS typ 'JWT' is not the expected 'at+jwt'"),
    (
        "expired",
        lambda w: w.token(exp=NOW - 31),
        f"Token expired at {NOW - 31}, now is {NOW} (leeway 30 s)",
    ),
    (
        "not-yet-valid",
        lambda w: w.token(nbf=NOW + 31),
        f"Token is not valid before {NOW + 31}, now is {NOW} (leeway 30 s)",
    ),
    (
        "iat-in-future",
        lambda w: w.token(iat=NOW + 31),
        f"Token iat {NOW + 31} is in the future, now is {NOW} (leeway 30 s)",
    ),
    (
        "wrong-iss",
        lambda w: w.token(iss="http://evil.test"),
        f"Token iss 'http://evil.test' is not the expected {ISSUER!r}",
    ),
    (
        "wrong-aud",
        lambda w: w.token(aud=["https://elsewhere.test"]),
        f"Token aud ['https://elsewhere.test'] does not contain {AUDIENCE!r}",
    ),
    ("changed-payload", _changed_payload, "JWS signature is invalid for kid 'k1'"),
    (
        "truncated",
        lambda w: w.token().rsplit(".", 1)[0],
        "JWS must have 3 parts, found 2",
    ),
    ("not-base64url", _not_base64url, "JWS payload is not unpadded base64url"),
    (
        "jwe",
        lambda w: f"{_part({'alg': 'dir', 'enc': 'A256GCM'})}..aXY.Y2lwaGVy.dGFn",
        "JWE is not accepted, only compact JWS",
    ),
    ("duplicate-claim", _duplicate_claim, "JSON member 'sub' is duplicated"),
    (
        "deep-act",
        lambda w: w.token(act=_nested_act(17), depth=17),
        "Token claim 'act' is nested deeper than 16 levels",
    ),
]


@pytest.mark.parametrize(
    ("make", "reason"),
    [case[1:] for case in BAD_TOKENS],
    ids=[case[0] for case in BAD_TOKENS],
)
async def test_bad_token_rejected(world: World, make: Any, reason: str) -> None:
    assert world.clock.now == NOW
    response = await world.call("GET", "/tickets/T-1", make(world))

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "The access token is invalid.",
    }
    assert challenge(response) == (
        f'DPoP realm="{AUDIENCE}", error="invalid_token", '
        'error_description="The access token is invalid.", algs="ES256 EdDSA"'
    )
    await world.middleware.decisions.flush()
    decision = world.issuer.batches[-1]["decisions"][-1]
    assert decision["decision"] == "deny"
    assert decision["status"] == 401
    assert decision["reason"] == reason
