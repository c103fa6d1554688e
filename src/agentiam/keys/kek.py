"""The key-encryption key (KEK) and AES-256-GCM encryption of private keys.

The KEK is 32 bytes, written as unpadded base64url.  It comes from the
``AGENTIAM_KEK`` environment variable, else from the ``kek_file`` setting, else from
``data_dir/kek``, which is generated with mode 0600 on first start.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agentiam.config import Settings
from agentiam.keys.errors import KEKError

KEK_ENV = "AGENTIAM_KEK"
KEK_SIZE = 32
NONCE_SIZE = 12

log = logging.getLogger("agentiam.keys")


def load_kek(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    generate: bool = True,
) -> bytes:
    """Return the KEK from the environment or a file.

    Args:
        generate: create ``data_dir/kek`` when no KEK is configured and that file
            is missing. Pass ``False`` once private keys exist, because a new KEK
            could not decrypt them.

    Raises:
        KEKError: the KEK is invalid or unreadable, or it is missing and
            ``generate`` is false.
    """
    env = os.environ if environ is None else environ
    text = env.get(KEK_ENV)
    if text is not None:
        return decode_kek(text, source=f"environment variable {KEK_ENV}")

    if settings.kek_file is not None:
        return _read_kek_file(settings.kek_file)

    path = settings.data_dir / "kek"
    if path.exists():
        return _read_kek_file(path)
    if not generate:
        raise KEKError(
            f"key-encryption key file {str(path)!r} not found, and the database "
            f"holds signing keys encrypted under a key-encryption key; set "
            f"{KEK_ENV} or kek_file as the server does"
        )
    return _generate_kek_file(path)


def decode_kek(text: str, *, source: str) -> bytes:
    """Decode an unpadded base64url KEK; raise ``KEKError`` naming ``source``."""
    stripped = text.strip()
    try:
        kek = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        kek = b""
    if len(kek) != KEK_SIZE:
        # The value is a secret, so the message names only its source.
        raise KEKError(
            f"invalid key-encryption key in {source}: expected {KEK_SIZE} bytes "
            "as base64url"
        )
    return kek


def encode_kek(kek: bytes) -> str:
    """Encode a KEK as unpadded base64url."""
    return base64.urlsafe_b64encode(kek).rstrip(b"=").decode("ascii")


def _read_kek_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise KEKError(f"key-encryption key file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KEKError(
            f"cannot read key-encryption key file {str(path)!r}: {exc}"
        ) from None
    return decode_kek(text, source=f"file {str(path)!r}")


def _generate_kek_file(path: Path) -> bytes:
    kek = secrets.token_bytes(KEK_SIZE)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    # O_EXCL so two processes starting at once cannot both write a different KEK.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(encode_kek(kek) + "\n")

    log.warning(
        "generated a key-encryption key in the data directory; set AGENTIAM_KEK or "
        "kek_file to keep it elsewhere",
        extra={"kek_file": str(path)},
    )
    return kek


def encrypt_private_key(kek: bytes, kid: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` with AES-256-GCM; return ``nonce || ciphertext``."""
    nonce = secrets.token_bytes(NONCE_SIZE)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, kid.encode("utf-8"))


def decrypt_private_key(kek: bytes, kid: str, blob: bytes) -> bytes:
    """Decrypt a blob from ``encrypt_private_key``; raise ``KEKError`` if it fails."""
    nonce, ciphertext = blob[:NONCE_SIZE], blob[NONCE_SIZE:]
    try:
        return AESGCM(kek).decrypt(nonce, ciphertext, kid.encode("utf-8"))
    except InvalidTag:
        raise KEKError(
            f"the key-encryption key does not decrypt signing key {kid!r}: "
            f"{KEK_ENV} or kek_file is not the key the data was written with"
        ) from None
