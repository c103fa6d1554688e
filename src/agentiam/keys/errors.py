"""Errors of the keys package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class KeyRingError(AgentIAMError):
    """The signing keys or the key-encryption key cannot be loaded or used."""


class KEKError(KeyRingError):
    """The key-encryption key is missing, malformed or does not decrypt the keys."""
