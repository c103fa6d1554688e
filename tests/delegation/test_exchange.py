"""Token exchange (RFC 8693): the issued token and every rejected request."""

from __future__ import annotations

import json

import pytest
from exchange_world import API, CRM, ORCHESTRATOR, ROGUE, WORKER, World

from agentiam.errors import OAuthError
from agentiam.jose import SigningKey
from agentiam.tasks import task_store


def _error(world: World, *args: object, **kwargs: object) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        world.exchange(*args, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_exchange_issues_child_token(world: World) -> None:
    subject = world.root_token()
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    response = world.exchange(subject, worker, scope="refunds", audience=API)

    assert (
        response["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    )
    assert response["token_type"] == "DPoP"
    assert response["scope"] == "refunds"
    claims = world.verify(response["access_token"])
    parent = world.verify(subject)
    assert claims["sub"] == world.alice.id
    assert claims["client_id"] == worker.spiffe_id
    assert claims["act"] == {
        "sub": worker.spiffe_id,
        "act": {"sub": world.orchestrator.spiffe_id},
    }
    assert claims["depth"] == 2
    assert claims["aud"] == [API]
    assert claims["derived_from"] == [parent["jti"]]
    assert claims["cnf"] == {"jkt": worker.key.thumbprint()}
    assert claims["exp"] <= parent["exp"]
    assert claims["task"]["path"][:-1] == [world.root_task.id]
    assert world.audit.types() == ["token.exchanged"]


def test_exchange_opens_child_task(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    response = world.exchange(
        world.root_token(), worker, scope="refunds", purpose="Refund T-1"
    )

    task_id = world.verify(response["access_token"])["task"]["id"]
    task = task_store(world.ctx.engine, world.ctx.revocations).get(task_id)
    assert task is not None
    assert task.parent_id == world.root_task.id
    assert task.purpose == "Refund T-1"
    assert task.scopes == ("refunds",)
    assert task.opened_by == worker.spiffe_id


def test_exchange_narrows_authorization_details(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    details = [{"type": "refund", "limit": {"amount": "80", "currency": "EUR"}}]

    response = world.exchange(
        world.root_token(),
        worker,
        scope="refunds",
        authorization_details=json.dumps(details),
    )

    assert world.verify(response["access_token"])["authorization_details"] == details


def test_exchange_narrows_details_per_subject_token(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    requested = json.dumps(
        [{"type": "refund", "limit": {"amount": "80", "currency": "EUR"}}]
    )
    wide = world.root_token()
    narrow = world.root_token(
        authorization_details=[
            {"type": "refund", "limit": {"amount": "50", "currency": "EUR"}}
        ]
    )

    for _ in range(2):
        response = world.exchange(
            wide, worker, scope="refunds", authorization_details=requested
        )
        claims = world.verify(response["access_token"])
        assert claims["authorization_details"] == json.loads(requested)
        err = _error(
            world, narrow, worker, scope="refunds", authorization_details=requested
        )
        assert err.error == "invalid_authorization_details"


def test_exchange_rechecks_refused_details(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    subject = world.root_token()
    wider = json.dumps(
        [{"type": "refund", "limit": {"amount": "150", "currency": "EUR"}}]
    )

    for _ in range(2):
        err = _error(
            world, subject, worker, scope="refunds", authorization_details=wider
        )
        assert err.error == "invalid_authorization_details"


def test_exchange_rejects_wider_scope(world: World) -> None:
    worker = world.agent(ORCHESTRATOR, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), worker, scope="refunds admin")

    assert err.error == "invalid_scope"
    assert "'admin'" in err.wire_description
    assert world.audit.types() == ["token.exchange_refused"]
    assert world.audit.events[0].decision == "deny"
    assert world.audit.events[0].details["error"] == "invalid_scope"


def test_exchange_rejects_scope_beyond_class(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), worker)

    assert err.error == "invalid_scope"


def test_exchange_rejects_other_audience(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world, world.root_token(), worker, scope="refunds", audience="https://evil"
    )

    assert err.error == "invalid_target"
    assert err.wire_description == (
        "The requested audience is not allowed. Audiences 'https://evil' are not "
        "in the parent token."
    )


def test_exchange_rejects_other_resource(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world, world.root_token(), worker, scope="refunds", resource="https://evil"
    )

    assert err.error == "invalid_target"


def test_exchange_rejects_longer_lifetime(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world,
        world.root_token(lifetime=120),
        worker,
        scope="refunds",
        requested_expiry="600",
    )

    assert err.error == "invalid_request"
    assert err.wire_description == (
        "The request is invalid. The requested_expiry of 600 seconds ends after "
        "the parent token, which expires in 120 seconds."
    )


def test_exchange_rejects_malformed_expiry(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world, world.root_token(), worker, scope="refunds", requested_expiry="-5"
    )

    assert err.error == "invalid_request"


def test_exchange_rejects_wider_authorization_details(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    details = [{"type": "refund", "limit": {"amount": "150", "currency": "EUR"}}]

    err = _error(
        world,
        world.root_token(),
        worker,
        scope="refunds",
        authorization_details=json.dumps(details),
    )

    assert err.error == "invalid_authorization_details"


def test_exchange_rejects_depth_over_limit(world: World) -> None:
    # The grant's max_depth is 2, so a token of depth 2 cannot be exchanged onward.
    subject = world.root_token()
    child = world.agent(ORCHESTRATOR, parent=world.orchestrator.spiffe_id)
    second = world.exchange(subject, child, scope="refunds")["access_token"]
    grandchild = world.agent(
        WORKER,
        parent=child.spiffe_id,
        ancestors=[world.orchestrator.spiffe_id, child.spiffe_id],
    )

    err = _error(world, second, grandchild, scope="refunds")

    assert err.error == "invalid_grant"
    assert err.wire_description == (
        "The grant or token presented is invalid. The delegation depth 3 exceeds "
        "the grant's maximum of 2."
    )


def test_exchange_rejects_class_not_spawnable(world: World) -> None:
    rogue = world.agent(ROGUE, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), rogue, scope="refunds")

    assert err.error == "unauthorized_client"
    assert err.wire_description == (
        "The client is not allowed to make this request. Agent class "
        f"'{ORCHESTRATOR}' may not spawn '{ROGUE}'."
    )


def test_exchange_rejects_actor_of_other_parent(world: World) -> None:
    stranger = world.agent(WORKER, parent=world.agent(ORCHESTRATOR).spiffe_id)

    err = _error(world, world.root_token(), stranger, scope="refunds")

    assert err.error == "unauthorized_client"
    assert err.wire_description == (
        "The client is not allowed to make this request. The actor is not a "
        "sub-agent of the subject token's client."
    )


def test_exchange_rejects_proof_of_other_key(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world,
        world.root_token(),
        worker,
        proof_key=SigningKey.generate("ES256"),
        scope="refunds",
    )

    assert err.error == "invalid_dpop_proof"
    assert "actor_token's cnf.jkt" in err.wire_description


def test_exchange_rejects_revoked_parent(world: World) -> None:
    subject = world.root_token()
    jti = world.verify(subject)["jti"]
    world.run(
        lambda conn: world.ctx.revocations.revoke_in(
            conn, "token", jti, world.clock() + 300
        )
    )
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, subject, worker, scope="refunds")

    assert err.error == "invalid_grant"
    assert err.wire_description == (
        "The grant or token presented is invalid. The subject_token has been revoked."
    )
    assert world.audit.events[-1].reason == f"subject_token revoked by '{jti}'"


def test_exchange_rejects_revoked_grant(world: World) -> None:
    world.run(
        lambda conn: world.ctx.revocations.revoke_in(
            conn, "grant", world.grant.id, world.grant.expires_at
        )
    )
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), worker, scope="refunds")

    assert err.error == "invalid_grant"


def test_exchange_rejects_closed_task(world: World) -> None:
    store = task_store(world.ctx.engine, world.ctx.revocations)
    world.run(
        lambda conn: store.close_in(
            conn, world.root_task.id, closed_by="test", now=world.clock()
        )
    )
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), worker, scope="refunds")

    assert err.error == "invalid_grant"
    assert err.wire_description == (
        "The grant or token presented is invalid. The subject_token has been revoked."
    )
    assert world.audit.events[-1].reason == (
        f"subject_token revoked by '{world.root_task.id}'"
    )


def _worker_token(world: World) -> tuple[str, object]:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    response = world.exchange(world.root_token(), worker, scope="refunds")
    return response["access_token"], worker


def test_exchange_rejects_missing_actor(world: World) -> None:
    # The worker's class does not allow impersonation.
    token, worker = _worker_token(world)
    world.audit.events.clear()

    err = _error(world, token, None, proof_key=worker.key)  # type: ignore[attr-defined]

    assert err.error == "invalid_request"
    assert err.wire_description == (
        "The request is invalid. Missing actor_token: the acting instance must "
        "present its JWT-SVID."
    )
    assert world.audit.types() == ["token.exchange_refused"]
    assert world.audit.events[0].details["impersonation"] is True
    assert "does not allow impersonation" in str(world.audit.events[0].reason)


def test_exchange_impersonation_allowed_by_class(world: World) -> None:
    subject = world.root_token()

    response = world.exchange(subject, None, scope="refunds")

    claims = world.verify(response["access_token"])
    assert claims["act"] == {"sub": world.orchestrator.spiffe_id}
    assert claims["client_id"] == world.orchestrator.spiffe_id
    assert claims["depth"] == 1
    assert claims["cnf"] == {"jkt": world.orchestrator.key.thumbprint()}
    assert world.audit.types() == ["token.exchanged"]
    assert world.audit.events[0].details["impersonation"] is True


def test_exchange_impersonation_needs_subject_key(world: World) -> None:
    intruder = SigningKey.generate("ES256")

    err = _error(world, world.root_token(), None, proof_key=intruder)

    assert err.error == "invalid_dpop_proof"
    assert "subject_token's cnf.jkt" in err.wire_description


def test_exchange_delegation_is_not_impersonation(world: World) -> None:
    _worker_token(world)

    assert world.audit.events[-1].details["impersonation"] is False


def test_exchange_rejects_other_actor_token_type(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(
        world,
        world.root_token(),
        worker,
        actor_token_type="urn:ietf:params:oauth:token-type:id_token",
    )

    assert err.error == "unsupported_token_type"


def test_exchange_rejects_other_subject_token_type(world: World) -> None:
    err = _error(
        world,
        world.root_token(),
        None,
        subject_token_type="urn:ietf:params:oauth:token-type:refresh_token",
    )

    assert err.error == "unsupported_token_type"


def test_exchange_rejects_invalid_subject(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, "not-a-token", worker)

    assert err.error == "invalid_grant"


def test_reexchange_keeps_act(world: World) -> None:
    subject = world.root_token()

    response = world.exchange(subject, world.orchestrator, scope="tickets")

    claims = world.verify(response["access_token"])
    assert claims["act"] == {"sub": world.orchestrator.spiffe_id}
    assert claims["depth"] == 1
    assert claims["task"]["id"] == world.root_task.id
    assert claims["derived_from"] == [world.verify(subject)["jti"]]


def test_reexchange_rejects_dropped_act(world: World) -> None:
    # A subject token whose act no longer names its client cannot be re-exchanged.
    subject = world.root_token(act={"sub": world.agent(ORCHESTRATOR).spiffe_id})

    err = _error(world, subject, world.orchestrator, scope="tickets")

    assert err.error == "invalid_grant"
    assert err.wire_description == (
        "The grant or token presented is invalid. The subject_token is invalid."
    )


def test_self_exchange_rejects_longer_lifetime(world: World) -> None:
    subject = world.root_token(lifetime=60)

    err = _error(world, subject, world.orchestrator, requested_expiry="240")

    assert err.error == "invalid_request"
    assert err.wire_description == (
        "The request is invalid. The requested_expiry of 240 seconds ends after "
        "the parent token, which expires in 60 seconds."
    )


def test_exchange_joins_named_task(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    response = world.exchange(
        world.root_token(), worker, scope="refunds", task_id=world.root_task.id
    )

    claims = world.verify(response["access_token"])
    assert claims["task"] == {"id": world.root_task.id, "path": [world.root_task.id]}


def test_exchange_rejects_task_outside_subtree(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)

    err = _error(world, world.root_token(), worker, scope="refunds", task_id="tsk_x")

    assert err.error == "invalid_request"


def test_reexchange_narrows_audience(world: World) -> None:
    response = world.exchange(world.root_token(), world.orchestrator, audience=CRM)

    assert world.verify(response["access_token"])["aud"] == [CRM]
