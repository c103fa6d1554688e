"""Claim value objects: wire layout, strict parsing and the public API."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

import agentiam.jose
import agentiam.spiffe
import agentiam.tokens
from agentiam.tokens import (
    AccessTokenClaims,
    Actor,
    GrantRef,
    InvalidClaimError,
    SessionClaims,
    SVIDClaims,
    TaskRef,
)

A = "spiffe://agentiam.test/agent/worker/i-2"
B = "spiffe://agentiam.test/agent/orchestrator/i-1"

ACCESS = {
    "ver": 1,
    "iss": "http://127.0.0.1:8800",
    "aud": ["https://support.example/api"],
    "exp": 1300,
    "iat": 1000,
    "nbf": 1000,
    "jti": "at-2",
    "sub": "alice",
    "client_id": A,
    "scope": "refunds",
    "act": {"sub": A, "act": {"sub": B}},
    "depth": 2,
    "grant": {"id": "g-1", "receipt_hash": "aGFzaA"},
    "task": {"id": "t-2", "path": ["t-1", "t-2"]},
    "derived_from": ["at-1"],
    "authorization_details": [{"type": "refund", "amount": "80"}],
    "cnf": {"jkt": "jkt-2"},
}

SVID = {
    "ver": 1,
    "iss": "http://127.0.0.1:8800",
    "aud": ["http://127.0.0.1:8800"],
    "sub": A,
    "iat": 1000,
    "exp": 1300,
    "jti": "svid-2",
    "cnf": {"jkt": "jkt-2"},
    "parent": B,
    "ancestors": [B],
    "task": {"id": "t-2", "path": ["t-1", "t-2"]},
}

SESSION = {
    "ver": 1,
    "iss": "http://127.0.0.1:8800",
    "aud": ["http://127.0.0.1:8800"],
    "sub": "alice",
    "sid": "s-1",
    "amr": ["pwd"],
    "iat": 1000,
    "exp": 1900,
    "jti": "sess-1",
    "admin": True,
}


@pytest.mark.parametrize(
    ("cls", "wire"),
    [(AccessTokenClaims, ACCESS), (SVIDClaims, SVID), (SessionClaims, SESSION)],
    ids=["access", "svid", "session"],
)
def test_to_dict_round_trip(cls: Any, wire: dict[str, Any]) -> None:
    claims = cls.from_dict(wire)
    assert claims.to_dict() == wire
    assert cls.from_dict(claims.to_dict()) == claims


def test_access_fields() -> None:
    claims = AccessTokenClaims.from_dict(ACCESS)
    assert claims.act == Actor(A, Actor(B))
    assert claims.actors == (A, B)
    assert claims.grant == GrantRef("g-1", "aGFzaA")
    assert claims.task == TaskRef("t-2", ("t-1", "t-2"))
    assert claims.derived_from == ("at-1",)


def test_optional_claims_omitted() -> None:
    wire = {
        name: value
        for name, value in ACCESS.items()
        if name not in ("act", "task", "derived_from", "authorization_details")
    }
    claims = AccessTokenClaims.from_dict(wire)
    assert claims.act is None
    assert claims.actors == ()
    assert claims.to_dict() == wire


def test_unknown_claims_ignored() -> None:
    claims = AccessTokenClaims.from_dict({**ACCESS, "token_use": "x"})
    assert "token_use" not in claims.to_dict()


def test_frozen_and_slotted() -> None:
    claims = SessionClaims.from_dict(SESSION)
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.sub = "mallory"  # type: ignore[misc]
    for cls in (AccessTokenClaims, SVIDClaims, SessionClaims, Actor, GrantRef, TaskRef):
        assert "__slots__" in vars(cls)


def test_actor_chain() -> None:
    assert Actor(A, Actor(B)).chain() == (A, B)
    assert Actor.from_dict({"sub": A}).to_dict() == {"sub": A}


def test_actor_sub_must_be_spiffe_id() -> None:
    with pytest.raises(InvalidClaimError) as info:
        Actor.from_dict({"sub": A, "act": {"sub": "alice"}})
    assert str(info.value) == (
        "Token claim 'act.act.sub': Invalid SPIFFE ID 'alice': "
        "scheme must be 'spiffe://' in lowercase"
    )
    assert info.value.claim == "act.act.sub"


def test_svid_parent_invalid() -> None:
    with pytest.raises(InvalidClaimError) as info:
        SVIDClaims.from_dict({**SVID, "parent": "spiffe://A/x"})
    assert str(info.value) == (
        "Token claim 'parent': Invalid SPIFFE ID 'spiffe://A/x': "
        "trust domain must be lowercase"
    )


C = "spiffe://agentiam.test/agent/orchestrator/i-0"


def test_svid_ancestors_round_trip() -> None:
    wire = {**SVID, "ancestors": [C, B]}

    claims = SVIDClaims.from_dict(wire)

    assert claims.ancestors == (C, B)
    assert claims.to_dict() == wire


def test_root_svid_has_no_ancestors() -> None:
    root = {k: v for k, v in SVID.items() if k not in ("parent", "ancestors", "task")}

    claims = SVIDClaims.from_dict(root)

    assert claims.ancestors == ()
    assert "ancestors" not in claims.to_dict()


def test_child_svid_without_ancestors() -> None:
    child = {k: v for k, v in SVID.items() if k != "ancestors"}

    with pytest.raises(InvalidClaimError) as info:
        SVIDClaims.from_dict(child)

    assert info.value.claim == "ancestors"
    assert str(info.value) == (
        "Token claim 'ancestors' is missing from an SVID that names 'parent'"
    )


@pytest.mark.parametrize(
    ("changes", "claim", "message"),
    [
        pytest.param(
            {"ancestors": []},
            "ancestors",
            "Token claim 'ancestors' must be a non-empty list",
            id="empty",
        ),
        pytest.param(
            {"ancestors": B},
            "ancestors",
            "Token claim 'ancestors' must be a non-empty list",
            id="not-list",
        ),
        pytest.param(
            {"ancestors": [7, B]},
            "ancestors[0]",
            "Token claim 'ancestors[0]' must be a string",
            id="not-string",
        ),
        pytest.param(
            {"ancestors": ["spiffe://agentiam.test/workload", B]},
            "ancestors[0]",
            "Token claim 'ancestors[0]': Invalid agent SPIFFE ID "
            "'spiffe://agentiam.test/workload': path must be "
            "'/agent/<class>/<instance>'",
            id="not-agent",
        ),
        pytest.param(
            {"ancestors": ["spiffe://other.test/agent/orchestrator/i-0", B]},
            "ancestors[0]",
            "Token claim 'ancestors[0]' 'spiffe://other.test/agent/orchestrator/i-0' "
            "is not in the trust domain 'agentiam.test' of 'sub'",
            id="foreign-domain",
        ),
        pytest.param(
            {"ancestors": [A, B]},
            "ancestors",
            f"Token claim 'ancestors' names 'sub' '{A}'",
            id="names-sub",
        ),
        pytest.param(
            {"ancestors": [B, C, B]},
            "ancestors",
            f"Token claim 'ancestors' names '{B}' more than once",
            id="repeated",
        ),
        pytest.param(
            {"ancestors": [B, C]},
            "ancestors",
            f"Token claim 'ancestors' must end with 'parent' '{B}', got '{C}'",
            id="not-parent",
        ),
        pytest.param(
            {"ancestors": [C, B], "parent": None},
            "ancestors",
            "Token claim 'ancestors' is present without 'parent'",
            id="no-parent",
        ),
        pytest.param(
            {
                "ancestors": [
                    f"spiffe://agentiam.test/agent/orchestrator/i-{n}"
                    for n in range(16)
                ]
            },
            "ancestors",
            "Token claim 'ancestors' names 16 instances, more than the maximum of 15",
            id="too-long",
        ),
    ],
)
def test_svid_ancestors_invalid(
    changes: dict[str, Any], claim: str, message: str
) -> None:
    wire = {**SVID, **changes}
    wire = {key: value for key, value in wire.items() if value is not None}

    with pytest.raises(InvalidClaimError) as info:
        SVIDClaims.from_dict(wire)

    assert info.value.claim == claim
    assert str(info.value) == message


def test_svid_ancestors_long_value_cut() -> None:
    long_id = "spiffe://other.test/agent/orchestrator/" + "x" * 200

    with pytest.raises(InvalidClaimError) as info:
        SVIDClaims.from_dict({**SVID, "ancestors": [long_id, B]})

    assert f"'{long_id[:80]}...'" in str(info.value)


def test_session_amr_type() -> None:
    with pytest.raises(InvalidClaimError) as info:
        SessionClaims.from_dict({**SESSION, "amr": "pwd"})
    assert str(info.value) == "Token claim 'amr' must be a list of non-empty strings"


def test_public_api() -> None:
    assert agentiam.spiffe.__all__ == [
        "SPIFFEID",
        "SPIFFEIDError",
        "TrustDomain",
        "agent_spiffe_id",
        "parse_agent_spiffe_id",
    ]
    assert set(agentiam.jose.__all__) >= {
        "ALLOWED_ALGORITHMS",
        "DPoPProof",
        "JOSEError",
        "ReplayCache",
        "SigningKey",
        "VerificationKey",
        "create_dpop_proof",
        "jwk_thumbprint",
        "sign_jws",
        "unverified_header",
        "verify_dpop_proof",
        "verify_jws",
    }
    assert set(agentiam.tokens.__all__) >= {
        "AccessTokenClaims",
        "Actor",
        "GrantRef",
        "SVIDClaims",
        "SessionClaims",
        "TaskRef",
        "TokenError",
        "verify_access_token",
        "verify_session_token",
        "verify_svid",
    }
    for module in (agentiam.spiffe, agentiam.jose, agentiam.tokens):
        for name in module.__all__:
            assert hasattr(module, name), name


BLOCKER = """
import sys

BLOCKED = ("starlette", "sqlalchemy", "alembic", "uvicorn", "psycopg", "fastapi",
           "httpx")


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked {name}")
        return None


sys.meta_path.insert(0, Blocker())
import agentiam.jose, agentiam.spiffe, agentiam.tokens
for name in sys.modules:
    top = name.split(".")[0]
    assert top not in BLOCKED, name
    if name.startswith("agentiam."):
        assert name.split(".")[1] in (
            "errors", "jose", "spiffe", "strict_json", "tokens"
        ), name
print("ok")
"""


def test_imports_without_server_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, check=False
    )
    assert result.stderr == ""
    assert result.stdout == "ok\n"
