"""In-memory caches of grants and agent classes for the token exchange hot path.

A grant row is immutable except ``revoked_at``. Revoking a grant also puts its id
into the revocation set, which the exchange checks, so a cached grant stays
correct. Agent classes can be edited by an administrator, so they are cached for a
short time only.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Engine

from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore

T = TypeVar("T")

# NOTE: a class edited by an administrator is seen by the exchange after at most
# this many seconds on each node, because class changes send no invalidation.
CLASS_CACHE_SECONDS = 10.0
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
        self._grant_cache: _TimedCache[Grant] = _TimedCache(float("inf"))
        self._class_cache: _TimedCache[AgentClass] = _TimedCache(CLASS_CACHE_SECONDS)

    def grant(self, grant_id: str) -> Grant | None:
        """Return the grant, from memory when it was read before and not revoked."""
        grant = self._grant_cache.get(grant_id)
        if grant is not None:
            return grant
        grant = self._grants.get(grant_id)
        if grant is not None and grant.revoked_at is None:
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
