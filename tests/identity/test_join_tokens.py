from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy

from agentiam.errors import InvalidRequestError
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.errors import UnknownAgentClassError
from agentiam.identity.join_tokens import (
    consume_join_token_in,
    create_join_token_in,
    hash_join_token,
)
from agentiam.identity.tables import join_tokens
from agentiam.identity.users import UserStore

BASE = AgentClass(
    name="support-orchestrator",
    owner="usr_owner",
    scopes=frozenset({"tickets"}),
    audiences=frozenset({"https://support.example/api"}),
    may_spawn=frozenset(),
    max_depth=1,
    default_ttl=300,
    max_ttl=300,
)


@pytest.fixture
def class_name(identity_engine: sqlalchemy.Engine) -> str:
    with identity_engine.begin() as conn:
        user = UserStore(identity_engine).add_in(
            conn, login="owner", password_hash="x", now=1.0
        )
        AgentClassStore(identity_engine).add_in(
            conn, dataclasses.replace(BASE, owner=user.id), now=1.0
        )
    return BASE.name


def create(engine: sqlalchemy.Engine, name: str, ttl: int = 60) -> str:
    with engine.begin() as conn:
        issued = create_join_token_in(
            conn, name, created_by="usr_x", ttl=ttl, max_ttl=3600, now=1000.0
        )
    assert issued.expires_at == 1000.0 + ttl
    return issued.token


def consume(engine: sqlalchemy.Engine, token: str, name: str, now: float) -> bool:
    with engine.begin() as conn:
        return consume_join_token_in(conn, token, agent_class=name, now=now)


def test_only_hash_stored(identity_engine: sqlalchemy.Engine, class_name: str) -> None:
    token = create(identity_engine, class_name)
    with identity_engine.connect() as conn:
        stored = conn.execute(sqlalchemy.select(join_tokens)).one()
    assert stored.token_hash == hash_join_token(token)
    assert token not in tuple(str(value) for value in stored)
    assert token.startswith("ajt_")


def test_consume_once(identity_engine: sqlalchemy.Engine, class_name: str) -> None:
    token = create(identity_engine, class_name)
    assert consume(identity_engine, token, class_name, 1001.0) is True
    assert consume(identity_engine, token, class_name, 1002.0) is False


def test_consume_expired(identity_engine: sqlalchemy.Engine, class_name: str) -> None:
    token = create(identity_engine, class_name, ttl=60)
    assert consume(identity_engine, token, class_name, 1060.0) is False


def test_consume_other_class(
    identity_engine: sqlalchemy.Engine, class_name: str
) -> None:
    token = create(identity_engine, class_name)
    assert consume(identity_engine, token, "refund-worker", 1001.0) is False
    assert consume(identity_engine, token, class_name, 1001.0) is True


def test_consume_unknown(identity_engine: sqlalchemy.Engine, class_name: str) -> None:
    assert consume(identity_engine, "ajt_unknown", class_name, 1001.0) is False


def test_create_unknown_class(identity_engine: sqlalchemy.Engine) -> None:
    with pytest.raises(UnknownAgentClassError) as info:
        create(identity_engine, "ghost")
    assert info.value.hint == "Agent class 'ghost' was not found."


def test_create_bad_ttl(identity_engine: sqlalchemy.Engine, class_name: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        create(identity_engine, class_name, ttl=0)
    assert info.value.hint == "Invalid ttl 0: expected 1 to 3600 seconds."


def test_create_ttl_above_max(
    identity_engine: sqlalchemy.Engine, class_name: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        create(identity_engine, class_name, ttl=10**30)
    assert info.value.hint == (f"Invalid ttl {10**30}: expected 1 to 3600 seconds.")
    with identity_engine.connect() as conn:
        assert conn.execute(sqlalchemy.select(join_tokens)).all() == []
