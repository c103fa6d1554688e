from __future__ import annotations

import pytest
import sqlalchemy

from agentiam.identity.clients import Client, ClientStore
from agentiam.identity.errors import InvalidClientRegistrationError
from agentiam.identity.tables import clients

AUDIENCE = "https://support.example/api"


def add(engine: sqlalchemy.Engine, client_id: str, audiences: list[str]) -> object:
    with engine.begin() as conn:
        return ClientStore(engine).add_in(conn, client_id, audiences, now=1.0)


def test_add_and_authenticate(identity_engine: sqlalchemy.Engine) -> None:
    issued = add(identity_engine, "support-api", [AUDIENCE])
    store = ClientStore(identity_engine)
    expected = Client("support-api", frozenset({AUDIENCE}))

    assert issued.client == expected
    assert store.authenticate("support-api", issued.client_secret) == expected
    assert store.authenticate("support-api", issued.client_secret + "x") is None
    assert store.authenticate("other-api", issued.client_secret) is None
    assert store.get("support-api") == expected


def test_secret_not_stored(identity_engine: sqlalchemy.Engine) -> None:
    issued = add(identity_engine, "support-api", [AUDIENCE])
    with identity_engine.connect() as conn:
        row = conn.execute(sqlalchemy.select(clients)).one()
    assert issued.client_secret not in row.secret_hash


@pytest.mark.parametrize(
    ("client_id", "audiences", "message"),
    [
        (
            "bad id",
            [AUDIENCE],
            "Invalid client id 'bad id': expected 1 to 128 characters of A-Z, a-z, "
            "0-9, '.', '_' and '-', starting with a letter or digit.",
        ),
        ("api", [], "Client 'api' needs at least one audience."),
        (
            "api",
            ["ftp://x"],
            "Invalid audience 'ftp://x': expected an absolute http or https URI "
            "without a fragment.",
        ),
    ],
    ids=["client-id", "no-audience", "audience"],
)
def test_add_rejects(
    identity_engine: sqlalchemy.Engine,
    client_id: str,
    audiences: list[str],
    message: str,
) -> None:
    with pytest.raises(InvalidClientRegistrationError) as info:
        add(identity_engine, client_id, audiences)
    assert info.value.hint == message


def test_add_duplicate(identity_engine: sqlalchemy.Engine) -> None:
    add(identity_engine, "api", [AUDIENCE])
    with pytest.raises(InvalidClientRegistrationError) as info:
        add(identity_engine, "api", [AUDIENCE])
    assert info.value.hint == "Client 'api' already exists."
