"""Token exchange: repeated targets, actor ancestry, depth per class, revoked grants."""

from __future__ import annotations

import pytest
from exchange_world import API, CRM, ORCHESTRATOR, WORKER, World, _add_class

from agentiam.delegation.caches import delegation_cache
from agentiam.delegation.grants import GrantStore
from agentiam.errors import OAuthError
from agentiam.revocation import RevocationSet


def _error(world: World, *args: object, **kwargs: object) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        world.exchange(*args, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_exchange_accepts_repeated_audience(world: World) -> None:
    response = world.exchange(
        world.root_token(), world.orchestrator, audience=[CRM, API]
    )

    assert world.verify(response["access_token"])["aud"] == [CRM, API]


def test_exchange_merges_audience_and_resource(world: World) -> None:
    response = world.exchange(
        world.root_token(), world.orchestrator, audience=[API, API], resource=[CRM]
    )

    assert world.verify(response["access_token"])["aud"] == [CRM, API]


def test_exchange_keeps_space_separated_audience(world: World) -> None:
    response = world.exchange(
        world.root_token(), world.orchestrator, audience=f"{API} {CRM}"
    )

    assert world.verify(response["access_token"])["aud"] == [CRM, API]


@pytest.mark.parametrize(
    ("params", "error", "description"),
    [
        pytest.param(
            {"audience": [API, ""]},
            "invalid_request",
            "The request is invalid. The parameter 'audience' has an empty value.",
            id="empty-audience",
        ),
        pytest.param(
            {"resource": ""},
            "invalid_request",
            "The request is invalid. The parameter 'resource' has an empty value.",
            id="empty-resource",
        ),
        pytest.param(
            {"resource": [API, f"{CRM}#part"]},
            "invalid_target",
            "The requested audience is not allowed. Invalid resource "
            f"'{CRM}#part': expected an absolute URI without a fragment.",
            id="resource-fragment",
        ),
        pytest.param(
            {"resource": "support-api"},
            "invalid_target",
            "The requested audience is not allowed. Invalid resource "
            "'support-api': expected an absolute URI without a fragment.",
            id="resource-relative",
        ),
    ],
)
def test_exchange_rejects_bad_target(
    world: World, params: dict[str, object], error: str, description: str
) -> None:
    err = _error(world, world.root_token(), world.orchestrator, **params)

    assert err.error == error
    assert err.wire_description == description


def test_exchange_accepts_matching_ancestors(world: World) -> None:
    parent = world.orchestrator.spiffe_id
    worker = world.agent(WORKER, parent=parent, ancestors=[parent])

    response = world.exchange(world.root_token(), worker, scope="refunds")

    assert world.verify(response["access_token"])["depth"] == 2


def test_exchange_rejects_other_ancestors(world: World) -> None:
    parent = world.orchestrator.spiffe_id
    other_root = parent.replace("o-1", "o-9")
    worker = world.agent(WORKER, parent=parent, ancestors=[other_root, parent])

    err = _error(world, world.root_token(), worker, scope="refunds")

    assert err.error == "unauthorized_client"
    assert err.wire_description == (
        "The client is not allowed to make this request. The actor is not a "
        "sub-agent of the subject token's chain."
    )


def test_exchange_rejects_depth_over_parent_class(world: World) -> None:
    shallow = "shallow-orchestrator"
    _add_class(
        world.ctx.engine,
        world.ctx.writer,
        world.alice.id,
        name=shallow,
        may_spawn=frozenset({WORKER}),
        max_depth=1,
    )
    parent = world.orchestrator.spiffe_id.replace(ORCHESTRATOR, shallow)
    subject = world.root_token(
        client_id=parent, act={"sub": parent}, cnf={"jkt": "unused"}
    )
    worker = world.agent(WORKER, parent=parent)

    err = _error(world, subject, worker, scope="refunds")

    assert err.error == "invalid_grant"
    assert err.wire_description == (
        "The grant or token presented is invalid. The delegation depth 2 exceeds "
        f"the maximum of 1 for agent class '{shallow}'."
    )


def test_exchange_rejects_grant_revoked_elsewhere(world: World) -> None:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    world.exchange(world.root_token(), worker, scope="refunds")
    subject = world.root_token()

    # Revoked as another process does it: the row and the entry, straight to the
    # table, and this node's set learns of it on its next refresh.
    def revoke(conn: object) -> None:
        GrantStore(world.ctx.engine).revoke_in(conn, world.grant.id, now=world.clock())

    world.run(revoke)
    other_node = RevocationSet(world.ctx.engine, clock=world.clock)
    world.run(
        lambda conn: other_node.revoke_in(
            conn, "grant", world.grant.id, world.clock() + 300
        )
    )
    world.ctx.revocations.refresh()

    cached = delegation_cache(world.ctx.engine).grant(
        world.grant.id, world.ctx.revocations
    )
    assert cached is not None
    assert cached.revoked_at is not None
    err = _error(world, subject, worker, scope="refunds")
    assert err.error == "invalid_grant"
