"""The revocation set, its table and its feed."""

from __future__ import annotations

from agentiam.revocation.revocation_set import (
    KINDS,
    RevocationEntry,
    RevocationSet,
    revoked_ids,
)

__all__ = ["KINDS", "RevocationEntry", "RevocationSet", "revoked_ids"]
