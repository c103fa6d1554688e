"""In-memory caches of grants and agent classes for the token exchange hot path.

A grant row is immutable except ``revoked_at``. Revoking a grant sets
``revoked_at`` and puts the grant id into the revocation set in one transaction,
so a cached grant is checked against the set on every hit: a hit whose id is in
the set is dropped and read again from the table. That covers revocations made
by another process (the CLI) or node as soon as the set has refreshed. Agent
classes can be edited by an administrator, so they are cached for a short time
only.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy import Engine

from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore

if TYPE_CHECKING:
    from agentiam.revocation.revocation_set import RevocationSet

T = TypeVar("T")

# NOTE: a class edited by an administrator is seen by the exchange after at most
# this many seconds on each node, because class changes send no invalidation.
CLASS_CACHE_SECONDS = 10.0
# A revocation entry stays in the set for at least the verifiers' leeway plus
# DROP_MARGIN (60 s) after it is written. Keeping a grant for less than that means
# a stale entry is always either re-read or seen with its revocation on a hit.
GRANT_CACHE_SECONDS = 30.0
_MAX_ENTRIES = 16384


class _TimedCache(Generic[T]):
    """A bounded map whose entries are dropped after ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            stored_at, value = item
            if self._clock() - stored_at > self._ttl:
                del self._items[key]
                return None
            return value

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._items[key] = (self._clock(), value)
            self._items.move_to_end(key)
            while len(self._items) > _MAX_ENTRIES:
                self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


class DelegationCache:
    """Grants and agent classes of one database, read through on a miss."""

    def __init__(self, engine: Engine) -> None:
        self._grants = GrantStore(engine)
        self._classes = AgentClassStore(engine)
        self._grant_cache: _TimedCache[Grant] = _TimedCache(GRANT_CACHE_SECONDS)
        self._class_cache: _TimedCache[AgentClass] = _TimedCache(CLASS_CACHE_SECONDS)

    def grant(self, grant_id: str, revocations: RevocationSet) -> Grant | None:
        """Return the grant, from memory when it was read before and not revoked.

        Args:
            revocations: the revocation set; a cached grant whose id is in it is
                dropped and read from the table, which has its ``revoked_at``.
        """
        revoked = revocations.is_revoked("grant", grant_id)
        grant = self._grant_cache.get(grant_id)
        if grant is not None and not revoked:
            return grant

        if grant is not None:
            self._grant_cache.drop(grant_id)
        grant = self._grants.get(grant_id)
        if grant is not None and grant.revoked_at is None and not revoked:
            self._grant_cache.put(grant_id, grant)
        return grant

    def agent_class(self, name: str) -> AgentClass | None:
        """Return the agent class, cached for ``CLASS_CACHE_SECONDS``."""
        agent_class = self._class_cache.get(name)
        if agent_class is not None:
            return agent_class
        agent_class = self._classes.get(name)
        if agent_class is not None:
            self._class_cache.put(name, agent_class)
        return agent_class

    def forget_class(self, name: str) -> None:
        """Drop a class from the cache, after an edit on this node."""
        self._class_cache.drop(name)


_caches: weakref.WeakKeyDictionary[Engine, DelegationCache] = (
    weakref.WeakKeyDictionary()
)
_caches_lock = threading.Lock()


def delegation_cache(engine: Engine) -> DelegationCache:
    """Return the one DelegationCache of an engine."""
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = DelegationCache(engine)
            _caches[engine] = cache
        return cache
