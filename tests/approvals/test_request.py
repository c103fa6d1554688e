"""Tests of parsing a CIBA authentication request against the class ceiling."""

from __future__ import annotations

import json

import pytest

from agentiam.api.forms import Form
from agentiam.approvals.authorize import require_known_user
from agentiam.approvals.errors import UnknownUserIdError
from agentiam.approvals.request import (
    InvalidBindingMessageError,
    parse_auth_request,
)
from agentiam.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
)
from agentiam.identity.classes import AgentClass
from agentiam.identity.users import User

API = "https://support.example/api"
CRM = "https://crm.example/api"

CLASS = AgentClass(
    name="support-orchestrator",
    owner="usr_1",
    scopes=frozenset({"tickets", "crm", "refunds"}),
    audiences=frozenset({API, CRM}),
    may_spawn=frozenset(),
    max_depth=3,
    default_ttl=300,
    max_ttl=900,
)


def form(**values: str) -> Form:
    base = {"login_hint": "alice", "scope": "tickets refunds", "audience": API}
    base.update(values)
    return Form({name: value for name, value in base.items() if value != "-"})


def test_parse_full_request() -> None:
    details = [{"type": "refund", "max_amount": "100"}]
    params = parse_auth_request(
        form(
            audience=f"{API} {CRM}",
            authorization_details=json.dumps(details),
            binding_message="Work ticket T-1",
            max_depth="2",
            requested_expiry="1800",
        ),
        CLASS,
    )

    assert params.login_hint == "alice"
    assert params.scopes == ("refunds", "tickets")
    assert params.audiences == (CRM, API)
    assert params.authorization_details == tuple(details)
    assert params.binding_message == "Work ticket T-1"
    assert params.max_depth == 2
    assert params.grant_ttl == 1800


def test_parse_defaults() -> None:
    params = parse_auth_request(form(audience="-", resource=API), CLASS)

    assert params.audiences == (API,)
    assert params.max_depth == 1
    assert params.grant_ttl == 3600
    assert params.authorization_details == ()
    assert params.binding_message == ""


REJECTED = [
    (
        "wider-scope",
        {"scope": "tickets admin"},
        InvalidScopeError,
        "Scope 'admin' is not allowed for agent class 'support-orchestrator'.",
    ),
    (
        "bad-scope-token",
        {"scope": 'tickets "x'},
        InvalidScopeError,
        "Invalid scope value '\"x': the character '\"' is not allowed in a scope "
        "token.",
    ),
    (
        "tab-in-scope",
        {"scope": "tickets\trefunds"},
        InvalidScopeError,
        "Invalid scope value 'tickets\\trefunds': the character '\\t' is not "
        "allowed in a scope token.",
    ),
    (
        "exponent-amount",
        {
            "authorization_details": '[{"type": "refund", '
            '"max_amount": {"amount": "1e2", "currency": "EUR"}}]'
        },
        InvalidAuthorizationDetailsError,
        "Invalid amount '1e2' in 'authorization_details[0].max_amount.amount': "
        "expected a string of digits with an optional fraction, such as '12.50'.",
    ),
    (
        "missing-scope",
        {"scope": "-"},
        InvalidRequestError,
        "The parameter 'scope' is missing.",
    ),
    (
        "wider-audience",
        {"audience": "https://evil.example"},
        InvalidTargetError,
        "Audience 'https://evil.example' is not allowed for agent class "
        "'support-orchestrator'.",
    ),
    (
        "resource-fragment",
        {"resource": f"{API}#x"},
        InvalidTargetError,
        f"Invalid resource '{API}#x': expected an absolute URI without a fragment.",
    ),
    (
        "no-audience",
        {"audience": "-"},
        InvalidRequestError,
        "The parameter 'audience' or 'resource' is missing.",
    ),
    (
        "missing-login-hint",
        {"login_hint": "-"},
        InvalidRequestError,
        "The parameter 'login_hint' is missing.",
    ),
    (
        "second-hint",
        {"id_token_hint": "x"},
        InvalidRequestError,
        "Only login_hint is supported as a hint.",
    ),
    (
        "ping-mode",
        {"client_notification_token": "x"},
        InvalidRequestError,
        "Only poll mode is supported.",
    ),
    (
        "wider-depth",
        {"max_depth": "4"},
        InvalidRequestError,
        "Invalid max_depth '4': expected 1 to 3 for agent class "
        "'support-orchestrator'.",
    ),
    (
        "zero-depth",
        {"max_depth": "0"},
        InvalidRequestError,
        "Invalid max_depth '0': expected 1 to 3 for agent class "
        "'support-orchestrator'.",
    ),
    (
        "negative-expiry",
        {"requested_expiry": "-5"},
        InvalidRequestError,
        "Invalid requested_expiry '-5': expected a positive integer.",
    ),
    (
        "long-expiry",
        {"requested_expiry": "86401"},
        InvalidRequestError,
        "Invalid requested_expiry '86401': expected 1 to 86400 seconds.",
    ),
    (
        "details-not-json",
        {"authorization_details": "[{"},
        InvalidAuthorizationDetailsError,
        "Invalid authorization_details: the value is not valid UTF-8 JSON.",
    ),
    (
        "details-object",
        {"authorization_details": '{"type": "refund"}'},
        InvalidAuthorizationDetailsError,
        "Expected a JSON array of at most 32 objects.",
    ),
    (
        "details-no-type",
        {"authorization_details": '[{"amount": 1}]'},
        InvalidAuthorizationDetailsError,
        "authorization_details[0] has no string 'type'.",
    ),
    (
        "details-duplicate",
        {"authorization_details": '[{"type": "a", "type": "b"}]'},
        InvalidAuthorizationDetailsError,
        "Invalid authorization_details: JSON member 'type' is duplicated.",
    ),
    (
        "details-nested",
        {"authorization_details": "[" * 3000 + "]" * 3000},
        InvalidAuthorizationDetailsError,
        "Invalid authorization_details: the value nests too deeply.",
    ),
    (
        "details-nan",
        {"authorization_details": '[{"type": "refund", "amount": NaN}]'},
        InvalidAuthorizationDetailsError,
        "Invalid authorization_details: JSON constant 'NaN' is not allowed.",
    ),
    (
        "message-control",
        {"binding_message": "a\nb"},
        InvalidBindingMessageError,
        "Expected at most 256 printable characters.",
    ),
    (
        "message-token",
        {"binding_message": "see eyJhbGciOiJFUzI1NiJ9.e30.x"},
        InvalidBindingMessageError,
        "The message must not contain a token.",
    ),
]


@pytest.mark.parametrize(
    ("values", "error", "hint"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_parse_rejects(
    values: dict[str, str], error: type[OAuthError], hint: str
) -> None:
    with pytest.raises(error) as caught:
        parse_auth_request(form(**values), CLASS)

    assert type(caught.value) is error
    assert caught.value.hint == hint


def test_wire_codes_of_rejections() -> None:
    assert InvalidScopeError.error == "invalid_scope"
    assert InvalidTargetError.error == "invalid_target"
    assert InvalidBindingMessageError.error == "invalid_binding_message"


def test_unknown_user_is_unknown_user_id() -> None:
    disabled = User("usr_2", "carol", "Carol", True, False, 0.0)

    for user in (None, disabled):
        with pytest.raises(UnknownUserIdError) as caught:
            require_known_user(user, "carol")
        assert caught.value.error == "unknown_user_id"
        assert caught.value.status == 400
        assert caught.value.to_dict() == {
            "error": "unknown_user_id",
            "error_description": "The login_hint does not name a known user.",
        }
