"""Tests of approving and denying a CIBA request."""

from __future__ import annotations

import pytest
from ciba_world import World

from agentiam.approvals.decisions import DecisionContext, approve_work, deny_work
from agentiam.approvals.errors import ApprovalDecidedError
from agentiam.approvals.store import CIBARequestStore
from agentiam.errors import NotFoundError


def test_approve_by_other_user_is_not_found(world: World) -> None:
    request_id, _ = world.make_request()
    dctx = DecisionContext.from_server(world.ctx)

    with pytest.raises(NotFoundError) as caught:
        world.run(approve_work(dctx, request_id, user_id=world.bob.id, channel="api"))

    assert caught.value.status == 404
    assert caught.value.hint == f"Approval request '{request_id}' was not found."
    assert str(caught.value) == f"Approval request '{request_id}' was not found."


def test_approve_twice_is_rejected(world: World) -> None:
    request_id, _ = world.make_request()
    dctx = DecisionContext.from_server(world.ctx)
    world.run(approve_work(dctx, request_id, user_id=world.alice.id, channel="api"))

    with pytest.raises(ApprovalDecidedError) as caught:
        world.run(deny_work(dctx, request_id, user_id=world.alice.id, channel="api"))

    assert caught.value.status == 409
    assert caught.value.hint == f"Approval request '{request_id}' was already approved."


def test_approve_expired_request_is_rejected(world: World) -> None:
    request_id, _ = world.make_request()
    world.clock.advance(world.ctx.settings.ciba_expires_in + 1)
    dctx = DecisionContext.from_server(world.ctx)

    with pytest.raises(ApprovalDecidedError) as caught:
        world.run(approve_work(dctx, request_id, user_id=world.alice.id, channel="api"))

    assert caught.value.hint == f"Approval request '{request_id}' has expired."
    assert world.audit.types() == ["approval.requested"]


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("approved", "was already approved."),
        ("issued", "was already approved."),
        ("denied", "was already denied."),
        ("expired", "has expired."),
    ],
)
def test_decide_closed_request_hint(world: World, status: str, hint: str) -> None:
    request_id, _ = world.make_request()
    world.run(
        lambda conn: CIBARequestStore(conn.engine).transition_in(
            conn, request_id, from_status="pending", to_status=status
        )
    )
    dctx = DecisionContext.from_server(world.ctx)

    with pytest.raises(ApprovalDecidedError) as caught:
        world.run(approve_work(dctx, request_id, user_id=world.alice.id, channel="cli"))

    assert caught.value.hint == f"Approval request '{request_id}' {hint}"
    assert str(caught.value) == (
        "The authorization request has already been decided or expired. "
        f"Approval request '{request_id}' {hint}"
    )


def test_list_pending_shows_only_own_open_requests(world: World) -> None:
    first, _ = world.make_request()
    world.clock.advance(1)
    second, _ = world.make_request(binding_message="Work ticket T-2")
    dctx = DecisionContext.from_server(world.ctx)
    world.run(deny_work(dctx, first, user_id=world.alice.id, channel="api"))
    store = CIBARequestStore(world.ctx.engine)

    alice_pending = store.list_pending(world.alice.id, now=world.clock())
    bob_pending = store.list_pending(world.bob.id, now=world.clock())

    assert [item.id for item in alice_pending] == [second]
    assert bob_pending == []
    view = alice_pending[0].to_public_dict()
    assert view["binding_message"] == "Work ticket T-2"
    assert "auth_req_id" not in view
    assert "auth_req_id_hash" not in view
