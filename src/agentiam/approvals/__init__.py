"""Approvals: OIDC CIBA authentication requests and their decision by a human.

An agent instance requests a grant on behalf of a user at ``/bc-authorize``. The
user approves or denies it through ``/v1/approvals`` or ``agentiam approval``. The
instance then polls ``/token`` with the CIBA grant type for its first delegated token.

The token endpoint handler is ``agentiam.approvals.ciba_grant.CIBAGrantHandler``. It
is not imported here, so that loading the tables needs no web framework.
"""

from __future__ import annotations

from agentiam.approvals.errors import (
    ApprovalDecidedError,
    ApprovalError,
    AuthorizationPendingError,
    CIBAAccessDeniedError,
    ExpiredTokenError,
    SlowDownError,
    UnknownUserIdError,
)
from agentiam.approvals.store import CIBARequest, CIBARequestStore

__all__ = [
    "ApprovalDecidedError",
    "ApprovalError",
    "AuthorizationPendingError",
    "CIBAAccessDeniedError",
    "CIBARequest",
    "CIBARequestStore",
    "ExpiredTokenError",
    "SlowDownError",
    "UnknownUserIdError",
]
