"""A bounded cache of tokens whose signature and claim types have been checked.

The same token bytes signed by the same key verify the same way every time, so a
hit skips only the JWS signature check and the claim parsing. A hit is served only
when the caller's key lookup still returns the key that verified the token, so a
key that was retired or replaced is looked up again. Callers still check ``iss``,
``aud``, the times and revocation on every use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from agentiam.jose import KeyLookup
from agentiam.jose.keys import VerificationKey

C = TypeVar("C")

DEFAULT_MAX_ENTRIES = 4096
# Longer tokens are verified every time, so one entry stays small.
MAX_CACHED_TOKEN_LENGTH = 8192


class VerifiedTokenCache(Generic[C]):
    """Claims of verified tokens by token text, with the key that verified each."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[VerificationKey, C]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, token: str, keys: KeyLookup) -> C | None:
        """Return the cached claims of ``token`` if ``keys`` still has its key."""
        with self._lock:
            item = self._items.get(token)
            if item is None:
                return None
            self._items.move_to_end(token)
        key, claims = item
        current = keys(key.kid)
        if current is None or (current is not key and current != key):
            self.drop(token)
            return None
        return claims

    def put(self, token: str, key: VerificationKey, claims: C) -> None:
        """Remember that ``key`` verified ``token`` and its parsed ``claims``."""
        if len(token) > MAX_CACHED_TOKEN_LENGTH:
            return
        with self._lock:
            self._items[token] = (key, claims)
            self._items.move_to_end(token)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def drop(self, token: str) -> None:
        """Forget ``token``."""
        with self._lock:
            self._items.pop(token, None)

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._items.clear()
