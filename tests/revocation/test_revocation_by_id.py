"""Target checks and entry expiry of revocation by id."""

from __future__ import annotations

import pytest

from agentiam.config import Settings
from agentiam.errors import InvalidRequestError
from agentiam.revocation.by_id import entry_expiry, verify_target


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        ("grant", "grt_abc-DEF_123"),
        ("task", "tsk_" + "a" * 32),
        ("instance", "spiffe://agentiam.local/agent/worker/i-1"),
        ("session", "s" * 22),
        ("token", "t" * 22),
    ],
    ids=["grant", "task", "instance", "session", "token"],
)
def test_verify_target_accepts(settings: Settings, kind: str, target: str) -> None:
    assert verify_target(kind, target, settings) == (kind, target)


@pytest.mark.parametrize(
    ("kind", "target", "hint"),
    [
        ("lease", "x", "The kind 'lease' is not one of"),
        (7, "x", "The kind '7' is not one of"),
        ("grant", "tsk_1", "The id 'tsk_1' is not a valid grant id."),
        ("task", "grt_1", "The id 'grt_1' is not a valid task id."),
        ("instance", "spiffe://x/agent/a", "is not a valid instance id."),
        ("token", "short", "The id 'short' is not a valid token id."),
        ("session", None, "The member 'id' is missing."),
    ],
    ids=["kind", "kind-type", "grant", "task", "instance", "token", "missing"],
)
def test_verify_target_rejects(
    settings: Settings, kind: object, target: object, hint: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        verify_target(kind, target, settings)

    assert caught.value.error == "invalid_request"
    assert hint in str(caught.value.hint)


def test_entry_expiry_per_kind(settings: Settings) -> None:
    now = 1000.0
    longest = max(settings.max_access_token_ttl, settings.svid_ttl)

    assert entry_expiry("session", settings, now) == (
        now + settings.session_ttl + settings.leeway
    )
    assert entry_expiry("grant", settings, now) == now + longest + settings.leeway
    assert entry_expiry("instance", settings, now) == now + longest + settings.leeway
