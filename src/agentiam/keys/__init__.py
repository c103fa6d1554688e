"""The signing key ring, the key-encryption key and key rotation."""

from __future__ import annotations

from agentiam.keys.errors import KEKError, KeyRingError
from agentiam.keys.ring import KeyInfo, KeyRing

__all__ = ["KEKError", "KeyInfo", "KeyRing", "KeyRingError"]
