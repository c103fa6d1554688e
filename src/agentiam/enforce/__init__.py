"""The ASGI enforcement middleware for resource servers that accept agent tokens."""

from __future__ import annotations

from agentiam.enforce.config import EnforcementConfig, Rule
from agentiam.enforce.details import authorize_detail
from agentiam.enforce.errors import (
    EnforcementError,
    ForbiddenError,
    JWKSError,
    RevocationFeedError,
)
from agentiam.enforce.middleware import EnforcementMiddleware
from agentiam.enforce.principal import Principal

__all__ = [
    "EnforcementConfig",
    "EnforcementError",
    "EnforcementMiddleware",
    "ForbiddenError",
    "JWKSError",
    "Principal",
    "RevocationFeedError",
    "Rule",
    "authorize_detail",
]
