from __future__ import annotations

import pytest

from agentiam.identity.errors import PasswordHashError
from agentiam.identity.passwords import (
    hash_client_secret,
    hash_password,
    verify_client_secret,
    verify_password,
)


def test_hash_password_encoding() -> None:
    encoded = hash_password("correct horse battery")
    parts = encoded.split("$")
    assert parts[:5] == ["scrypt", "1", str(2**15), "8", "1"]
    assert len(parts) == 7


def test_hash_password_salted() -> None:
    assert hash_password("same password!") != hash_password("same password!")


def test_verify_password_accepts_and_rejects() -> None:
    encoded = hash_password("correct horse battery")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("bcrypt$1$x", "Unknown password hash encoding."),
        ("scrypt$2$1$1$1$AA$AA", "Unknown password hash encoding."),
        ("scrypt$1$n$8$1$AA$AA", "Malformed password hash."),
    ],
    ids=["other-scheme", "other-version", "bad-parameter"],
)
def test_verify_password_bad_encoding(encoded: str, message: str) -> None:
    with pytest.raises(PasswordHashError) as info:
        verify_password("whatever password", encoded)
    assert str(info.value) == message


def test_client_secret_hash() -> None:
    encoded = hash_client_secret("s3cret-value")
    assert encoded.startswith("sha256$1$")
    assert verify_client_secret("s3cret-value", encoded)
    assert not verify_client_secret("s3cret-valuf", encoded)
    assert not verify_client_secret("s3cret-value", "plain")
