from __future__ import annotations

import pytest
import sqlalchemy

from agentiam.identity.errors import InvalidUserError, UnknownUserError
from agentiam.identity.users import UserStore, validate_login, validate_password

INVALID = "The request is invalid. "


def add(engine: sqlalchemy.Engine, login: str, **kwargs: object) -> object:
    with engine.begin() as conn:
        return UserStore(engine).add_in(
            conn, login=login, password_hash="scrypt$x", now=100.0, **kwargs
        )


def test_add_and_get(identity_engine: sqlalchemy.Engine) -> None:
    user = add(identity_engine, "alice", display_name="Alice A.", admin=True)
    store = UserStore(identity_engine)

    assert store.get(user.id) == user
    assert store.find_by_login("alice") == user
    assert user.display_name == "Alice A."
    assert user.admin is True
    assert user.disabled is False
    assert user.id.startswith("usr_")


def test_display_name_defaults_to_login(identity_engine: sqlalchemy.Engine) -> None:
    user = add(identity_engine, "bob")
    assert user.display_name == "bob"


def test_add_duplicate_login(identity_engine: sqlalchemy.Engine) -> None:
    add(identity_engine, "alice")
    with pytest.raises(InvalidUserError) as info:
        add(identity_engine, "alice")
    assert str(info.value) == INVALID + "User 'alice' already exists."


@pytest.mark.parametrize(
    "login", ["", "Alice", "-alice", "al ice", "a" * 129], ids=str.__len__
)
def test_validate_login_rejects(login: str) -> None:
    with pytest.raises(InvalidUserError) as info:
        validate_login(login)
    assert info.value.hint == (
        f"Invalid login '{login}': expected 1 to 128 characters of a-z, 0-9, "
        "'.', '_', '@' and '-', starting with a letter or digit."
    )


def test_validate_password_length() -> None:
    validate_password("x" * 12)
    with pytest.raises(InvalidUserError) as info:
        validate_password("short")
    assert info.value.hint == "Invalid password: expected 12 to 1024 characters, got 5."


def test_list_ordered_by_login(identity_engine: sqlalchemy.Engine) -> None:
    add(identity_engine, "carol")
    add(identity_engine, "alice")
    logins = [user.login for user in UserStore(identity_engine).list()]
    assert logins == ["alice", "carol"]


def test_disable(identity_engine: sqlalchemy.Engine) -> None:
    user = add(identity_engine, "alice")
    store = UserStore(identity_engine)
    with identity_engine.begin() as conn:
        disabled = store.disable_in(conn, user.id)

    assert disabled.disabled is True
    assert store.get(user.id).disabled is True


def test_disable_unknown(identity_engine: sqlalchemy.Engine) -> None:
    with identity_engine.begin() as conn, pytest.raises(UnknownUserError) as info:
        UserStore(identity_engine).disable_in(conn, "usr_nobody")
    assert info.value.hint == "User 'usr_nobody' was not found."


def test_require_by_login_unknown(identity_engine: sqlalchemy.Engine) -> None:
    with pytest.raises(UnknownUserError) as info:
        UserStore(identity_engine).require_by_login("zed")
    assert info.value.hint == "User 'zed' was not found."


def test_password_hash_lookup(identity_engine: sqlalchemy.Engine) -> None:
    add(identity_engine, "alice")
    found = UserStore(identity_engine).password_hash("alice")
    assert found is not None
    assert found[1] == "scrypt$x"
    assert UserStore(identity_engine).password_hash("nobody") is None
