from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy

from agentiam.identity.classes import AgentClass, AgentClassStore, validate_agent_class
from agentiam.identity.errors import InvalidAgentClassError, UnknownAgentClassError
from agentiam.identity.users import UserStore

BASE = AgentClass(
    name="support-orchestrator",
    owner="usr_owner",
    scopes=frozenset({"tickets", "refunds"}),
    audiences=frozenset({"https://support.example/api"}),
    may_spawn=frozenset({"refund-worker"}),
    max_depth=2,
    default_ttl=300,
    max_ttl=1800,
)


@pytest.fixture
def owner_id(identity_engine: sqlalchemy.Engine) -> str:
    with identity_engine.begin() as conn:
        user = UserStore(identity_engine).add_in(
            conn, login="owner", password_hash="x", now=1.0
        )
    return user.id


def add(engine: sqlalchemy.Engine, agent_class: AgentClass) -> None:
    with engine.begin() as conn:
        AgentClassStore(engine).add_in(conn, agent_class, now=1.0)


def test_add_and_get(identity_engine: sqlalchemy.Engine, owner_id: str) -> None:
    agent_class = dataclasses.replace(BASE, owner=owner_id)
    add(identity_engine, agent_class)
    store = AgentClassStore(identity_engine)

    assert store.get("support-orchestrator") == agent_class
    assert store.list() == [agent_class]
    assert store.get("nope") is None


def test_impersonation_off_by_default() -> None:
    assert BASE.allow_impersonation is False


def test_add_unknown_owner(identity_engine: sqlalchemy.Engine) -> None:
    with pytest.raises(InvalidAgentClassError) as info:
        add(identity_engine, BASE)
    assert info.value.hint == "Invalid owner 'usr_owner': no user has this id."


def test_add_duplicate(identity_engine: sqlalchemy.Engine, owner_id: str) -> None:
    agent_class = dataclasses.replace(BASE, owner=owner_id)
    add(identity_engine, agent_class)
    with pytest.raises(InvalidAgentClassError) as info:
        add(identity_engine, agent_class)
    assert info.value.hint == "Agent class 'support-orchestrator' already exists."


NAME_RULE = (
    "expected 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting "
    "with a letter or digit."
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "a/b"}, f"Invalid agent class name 'a/b': {NAME_RULE}"),
        ({"name": ".."}, f"Invalid agent class name '..': {NAME_RULE}"),
        ({"name": ""}, f"Invalid agent class name '': {NAME_RULE}"),
        ({"name": "x" * 65}, f"Invalid agent class name '{'x' * 65}': {NAME_RULE}"),
        (
            {"may_spawn": frozenset({"bad name"})},
            f"Invalid agent class name 'bad name': {NAME_RULE}",
        ),
        (
            {"scopes": frozenset({'a"b'})},
            "Invalid scope 'a\"b': expected printable ASCII without spaces, '\"' "
            "or '\\'.",
        ),
        (
            {"audiences": frozenset({"support.example"})},
            "Invalid audience 'support.example': expected an absolute http or "
            "https URI without a fragment.",
        ),
        (
            {"audiences": frozenset({"https://a.example/#x"})},
            "Invalid audience 'https://a.example/#x': expected an absolute http or "
            "https URI without a fragment.",
        ),
        ({"max_depth": 0}, "Invalid max_depth 0: expected at least 1."),
        ({"default_ttl": 0}, "Invalid default_ttl 0: expected at least 1 second."),
        (
            {"default_ttl": 3600},
            "Invalid default_ttl 3600: expected at most max_ttl 1800.",
        ),
    ],
    ids=[
        "slash",
        "dotdot",
        "empty",
        "long",
        "spawn-name",
        "scope",
        "audience-relative",
        "audience-fragment",
        "depth",
        "ttl-zero",
        "ttl-order",
    ],
)
def test_validate_rejects(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidAgentClassError) as info:
        validate_agent_class(dataclasses.replace(BASE, **changes))
    assert info.value.hint == message
    assert info.value.error == "invalid_request"


def test_require_unknown(identity_engine: sqlalchemy.Engine) -> None:
    with pytest.raises(UnknownAgentClassError) as info:
        AgentClassStore(identity_engine).require("ghost")
    assert info.value.hint == "Agent class 'ghost' was not found."


def test_keys(identity_engine: sqlalchemy.Engine, owner_id: str) -> None:
    add(identity_engine, dataclasses.replace(BASE, owner=owner_id))
    store = AgentClassStore(identity_engine)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}
    with identity_engine.begin() as conn:
        store.add_key_in(
            conn, BASE.name, kid="k1", jwk=jwk, created_by=owner_id, now=2.0
        )

    assert store.key(BASE.name, "k1") == jwk
    assert store.key(BASE.name, "k2") is None
    assert store.keys(BASE.name) == ["k1"]

    with identity_engine.begin() as conn, pytest.raises(InvalidAgentClassError) as info:
        store.add_key_in(
            conn, BASE.name, kid="k1", jwk=jwk, created_by=owner_id, now=2.0
        )
    assert info.value.hint == (
        "Agent class 'support-orchestrator' already has a key with kid 'k1'."
    )


def test_key_for_unknown_class(identity_engine: sqlalchemy.Engine) -> None:
    with (
        identity_engine.begin() as conn,
        pytest.raises(UnknownAgentClassError) as info,
    ):
        AgentClassStore(identity_engine).add_key_in(
            conn, "ghost", kid="k", jwk={}, created_by="u", now=1.0
        )
    assert info.value.hint == "Agent class 'ghost' was not found."
