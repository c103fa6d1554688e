"""A bounded in-memory cache of used DPoP ``jti`` values (RFC 9449 section 11.1)."""

from __future__ import annotations

import heapq
import threading

from agentiam.jose.errors import DPoPReplayError, ReplayCacheFullError


class ReplayCache:
    """Used ``jti`` values with their expiry, at most ``max_entries`` at a time.

    Expired entries are dropped on each insert. When the cache is full of
    unexpired entries it rejects new ones instead of evicting, because evicting a
    live entry would let that proof be replayed.
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, jti = heapq.heappop(self._heap)
            if self._expiry.get(jti) == expires_at:
                del self._expiry[jti]

    def check_and_add(self, jti: str, expires_at: float, now: float) -> None:
        """Record ``jti`` until ``expires_at``, or raise if it is already recorded.

        Raises:
            DPoPReplayError: ``jti`` was recorded and has not expired.
            ReplayCacheFullError: the cache contains ``max_entries`` live entries.
        """
        with self._lock:
            heap = self._heap
            if heap and heap[0][0] <= now:
                self._purge(now)
            if jti in self._expiry:
                raise DPoPReplayError(f"DPoP proof jti {jti!r} was already used")
            if len(self._expiry) >= self.max_entries:
                raise ReplayCacheFullError(
                    f"DPoP replay cache is full ({self.max_entries} entries)"
                )
            self._expiry[jti] = expires_at
            heapq.heappush(self._heap, (expires_at, jti))
