"""Password and client-secret hashing.

Passwords are hashed with scrypt (RFC 7914) and encoded with a version prefix and
their parameters, so the parameters can be raised later without breaking old hashes:
``scrypt$1$<n>$<r>$<p>$<salt>$<hash>`` with unpadded base64url salt and hash. This
encoding must never change meaning; a new one gets a new version number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from agentiam.identity.errors import PasswordHashError

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32

# scrypt needs 128 * n * r bytes (32 MiB here), which is exactly hashlib's default
# limit, so the limit is raised with headroom.
_MAX_MEMORY = 64 * 1024 * 1024

_PREFIX = "scrypt"
_VERSION = "1"

# Verified against when the login is unknown, so that an unknown login costs the
# same time as a wrong password.
_DUMMY_HASH: str | None = None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_MAX_MEMORY,
        dklen=HASH_BYTES,
    )


def hash_password(password: str) -> str:
    """Hash a password with scrypt and a fresh 16-byte salt.

    Returns:
        The encoded hash, ``scrypt$1$n$r$p$salt$hash``.
    """
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    fields = [_PREFIX, _VERSION, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P)]
    return "$".join([*fields, _b64encode(salt), _b64encode(digest)])


def verify_password(password: str, encoded: str) -> bool:
    """Check a password against an encoded hash in constant time.

    Raises:
        PasswordHashError: the stored hash is not in a known encoding.
    """
    parts = encoded.split("$")
    if len(parts) != 7 or parts[0] != _PREFIX or parts[1] != _VERSION:
        raise PasswordHashError("Unknown password hash encoding.")

    try:
        n, r, p = int(parts[2]), int(parts[3]), int(parts[4])
        salt = _b64decode(parts[5])
        expected = _b64decode(parts[6])
    except ValueError as err:
        raise PasswordHashError("Malformed password hash.") from err

    actual = _scrypt(password, salt, n, r, p)
    return hmac.compare_digest(actual, expected)


def burn_password_check(password: str) -> None:
    """Spend the time of one password check, for logins that fail before it."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not a password")
    verify_password(password, _DUMMY_HASH)


# Client secrets are 32 random bytes, so a brute-force search is infeasible and a
# plain SHA-256 is enough; it keeps /introspect free of a slow hash per call. This
# encoding must never change meaning: ``sha256$1$<hex digest>``.
_SECRET_PREFIX = "sha256$1$"  # noqa: S105 (a prefix, not a secret)


def hash_client_secret(secret: str) -> str:
    """Hash a high-entropy client secret (never use this for passwords)."""
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()
    return _SECRET_PREFIX + digest


def verify_client_secret(secret: str, encoded: str) -> bool:
    """Check a client secret against its encoded hash in constant time."""
    if not encoded.startswith(_SECRET_PREFIX):
        return False
    return hmac.compare_digest(hash_client_secret(secret), encoded)
