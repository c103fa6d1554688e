"""Fixtures of the delegation tests; the world itself is built in exchange_world."""

from __future__ import annotations

from exchange_world import world

__all__ = ["world"]
