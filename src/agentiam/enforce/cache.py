"""TokenCache, verified access tokens kept by hash until they expire."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class TokenCache(Generic[T]):
    """A bounded LRU map from the SHA-256 of a token to its verified claims.

    The key is the token's hash, so the cache never holds a usable token. An entry
    is returned only before its ``exp``; revocation is checked by the caller on
    every request, so a cached token that is revoked later is still rejected.
    """

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[T, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key_of(token: str | bytes) -> bytes:
        """Return the cache key of a token: the SHA-256 digest of its bytes.

        A str is hashed as UTF-8, so an ASCII token, as every JWS is, has the same
        key as text and as bytes.
        """
        data = token.encode() if isinstance(token, str) else token
        return hashlib.sha256(data).digest()

    def get(self, key: bytes, now: float) -> T | None:
        """Return the claims cached under ``key`` if they have not expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        claims, expires_at = entry
        if now >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return claims

    def put(self, key: bytes, claims: T, expires_at: float) -> None:
        """Cache claims until ``expires_at``, evicting the least recently used."""
        self._entries[key] = (claims, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
