"""Tests of the CIBA poll at the token endpoint, one per CIBA section 11 outcome."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy
from ciba_world import API, INSTANCE, ISSUER, World
from starlette.requests import Request

from agentiam.api.forms import Form
from agentiam.approvals.ciba_grant import CIBAGrantHandler, poll_work
from agentiam.approvals.decisions import DecisionContext, approve_work, deny_work
from agentiam.approvals.errors import (
    AuthorizationPendingError,
    CIBAAccessDeniedError,
    ExpiredTokenError,
    SlowDownError,
)
from agentiam.approvals.store import CIBARequestStore
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.delegation.receipts import verify_receipt
from agentiam.errors import InvalidDPoPProofError, InvalidGrantError
from agentiam.identity.tables import agent_classes
from agentiam.jose import SigningKey, create_dpop_proof, verify_jws
from agentiam.tasks.store import task_store
from agentiam.tokens import AccessTokenClaims


def poll(world: World, auth_req_id: str, jkt: str | None = None) -> object:
    return world.run(poll_work(world.ctx, auth_req_id, jkt or world.jkt))


def approve(world: World, request_id: str) -> Grant:
    dctx = DecisionContext.from_server(world.ctx)
    grant: Grant = world.run(
        approve_work(dctx, request_id, user_id=world.alice.id, channel="api")
    )
    return grant


def test_poll_pending_returns_authorization_pending(world: World) -> None:
    _, auth_req_id = world.make_request()

    outcome = poll(world, auth_req_id)

    assert isinstance(outcome, AuthorizationPendingError)
    assert outcome.error == "authorization_pending"
    assert outcome.status == 400


def test_poll_too_fast_slows_down_by_five_seconds(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    assert isinstance(poll(world, auth_req_id), AuthorizationPendingError)

    world.clock.advance(2)
    outcome = poll(world, auth_req_id)

    assert isinstance(outcome, SlowDownError)
    assert outcome.error == "slow_down"
    stored = CIBARequestStore(world.ctx.engine).get(request_id)
    assert stored is not None
    assert stored.interval == 10

    # The new interval counts from the last poll, which was the slow_down one.
    world.clock.advance(9)
    assert isinstance(poll(world, auth_req_id), SlowDownError)
    world.clock.advance(15)
    assert isinstance(poll(world, auth_req_id), AuthorizationPendingError)


def test_poll_after_expiry_returns_expired_token(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    world.clock.advance(world.ctx.settings.ciba_expires_in)

    outcome = poll(world, auth_req_id)

    assert isinstance(outcome, ExpiredTokenError)
    assert outcome.error == "expired_token"
    stored = CIBARequestStore(world.ctx.engine).get(request_id)
    assert stored is not None
    assert stored.status == "expired"


def test_poll_denied_returns_access_denied(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    dctx = DecisionContext.from_server(world.ctx)
    world.run(deny_work(dctx, request_id, user_id=world.alice.id, channel="cli"))

    outcome = poll(world, auth_req_id)

    assert isinstance(outcome, CIBAAccessDeniedError)
    assert outcome.error == "access_denied"
    assert outcome.status == 400
    denied = world.audit.events[-1]
    assert denied.type == "approval.denied"
    assert denied.decision == "deny"
    assert denied.human == world.alice.id
    assert denied.details["channel"] == "cli"


def test_poll_approved_issues_first_token(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    grant = approve(world, request_id)
    world.clock.advance(5)

    response = poll(world, auth_req_id)

    assert isinstance(response, dict)
    assert response["token_type"] == "DPoP"
    assert response["scope"] == "refunds tickets"
    # min(access_token_ttl 300, class default_ttl 240, grant remaining 1795)
    assert response["expires_in"] == 240

    header, raw = verify_jws(
        response["access_token"], world.keyring.lookup, typ="at+jwt"
    )
    assert set(header) == {"alg", "kid", "typ"}
    claims = AccessTokenClaims.from_dict(raw)
    assert claims.iss == ISSUER
    assert claims.sub == world.alice.id
    assert claims.client_id == INSTANCE
    assert claims.act is not None
    assert claims.act.chain() == (INSTANCE,)
    assert claims.depth == 1
    assert claims.aud == (API,)
    assert claims.cnf_jkt == world.jkt
    assert claims.grant.id == grant.id
    assert claims.grant.receipt_hash == grant.receipt_hash
    assert claims.derived_from == ()
    assert claims.authorization_details == (
        {"type": "refund", "max_amount": "100", "currency": "EUR"},
    )
    assert claims.exp - claims.iat == 240
    assert claims.task is not None
    assert claims.task.path == (claims.task.id,)

    task = task_store(world.ctx.engine, world.ctx.revocations).get(claims.task.id)
    assert task is not None
    assert task.purpose == "Work ticket T-1"
    assert task.expires_at == grant.expires_at
    assert task.opened_by == INSTANCE

    assert world.audit.types() == [
        "approval.requested",
        "grant.approved",
        "task.opened",
        "token.issued",
    ]
    issued = world.audit.events[-1]
    assert issued.details["jti"] == claims.jti
    assert issued.receipt_hash == grant.receipt_hash
    assert tuple(issued.task_path) == claims.task.path


def test_poll_second_redemption_is_invalid_grant(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    approve(world, request_id)
    assert isinstance(poll(world, auth_req_id), dict)
    world.clock.advance(10)

    outcome = poll(world, auth_req_id)

    assert isinstance(outcome, InvalidGrantError)
    assert outcome.hint == "The auth_req_id has already been redeemed."


def test_poll_with_other_key_is_invalid_grant(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    approve(world, request_id)
    other = SigningKey.generate("ES256").thumbprint()

    outcome = poll(world, auth_req_id, other)

    assert isinstance(outcome, InvalidGrantError)
    assert outcome.hint == "Unknown auth_req_id."
    assert isinstance(poll(world, auth_req_id), dict)


def test_poll_unknown_auth_req_id_is_invalid_grant(world: World) -> None:
    outcome = poll(world, "no-such-id")

    assert isinstance(outcome, InvalidGrantError)
    assert outcome.hint == "Unknown auth_req_id."


def test_poll_revoked_grant_is_invalid_grant(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    grant = approve(world, request_id)
    revocations = world.ctx.revocations
    world.run(lambda conn: revocations.revoke_in(conn, "grant", grant.id, 2e9))

    with pytest.raises(InvalidGrantError) as caught:
        poll(world, auth_req_id)

    assert caught.value.hint == "The grant is revoked or expired."
    # The failed unit rolled back, so the request is still approved, not issued.
    stored = CIBARequestStore(world.ctx.engine).get(request_id)
    assert stored is not None
    assert stored.status == "approved"


def test_approved_grant_keeps_verifiable_receipt(world: World) -> None:
    request_id, _ = world.make_request()
    grant = approve(world, request_id)

    stored = GrantStore(world.ctx.engine).get(grant.id)
    assert stored == grant
    receipt = verify_receipt(
        grant.receipt, world.keyring.lookup, expected_hash=grant.receipt_hash
    )
    assert receipt.grant_id == grant.id
    assert receipt.human == world.alice.id
    assert receipt.method == "ciba"
    assert receipt.binding_message == "Work ticket T-1"
    assert receipt.grant_expires_at == int(world.clock()) + 1800
    approved = world.audit.events[-1]
    assert approved.type == "grant.approved"
    assert approved.receipt_hash == grant.receipt_hash


def _token_request(proof: str | None) -> Request:
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    if proof is not None:
        headers.append((b"dpop", proof.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/token",
        "raw_path": b"/token",
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "server": ("127.0.0.1", 8800),
    }
    return Request(scope)


def test_handler_checks_dpop_proof_and_issues(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    approve(world, request_id)
    handler = CIBAGrantHandler()
    form = Form({"grant_type": handler.grant_type, "auth_req_id": auth_req_id})

    with pytest.raises(InvalidDPoPProofError):
        asyncio.run(handler.handle(form, _token_request(None), world.ctx))

    proof = create_dpop_proof(
        world.instance_key, htm="POST", htu=f"{ISSUER}/token", now=world.clock()
    )
    response = asyncio.run(handler.handle(form, _token_request(proof), world.ctx))

    assert response["token_type"] == "DPoP"
    assert handler.grant_type == "urn:openid:params:grant-type:ciba"


def test_poll_after_class_narrowed_is_invalid_grant(world: World) -> None:
    request_id, auth_req_id = world.make_request()
    approve(world, request_id)
    narrowed = sqlalchemy.update(agent_classes).values(scopes='["tickets"]')
    world.run(lambda conn: conn.execute(narrowed))

    with pytest.raises(InvalidGrantError) as caught:
        poll(world, auth_req_id)

    assert caught.value.hint == "The grant is wider than its agent class now allows."
