"""The agent SDK: attestation, CIBA approval, sub-agents, token exchange, DPoP."""

from __future__ import annotations

from agentiam.client.agent import Agent
from agentiam.client.auth import DPoPAuth
from agentiam.client.errors import (
    AccessDeniedError,
    ClientError,
    ExpiredTokenError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenError,
    ProtocolError,
    ServerError,
    TemporarilyUnavailableError,
)
from agentiam.client.tokens import DelegatedToken

__all__ = [
    "AccessDeniedError",
    "Agent",
    "ClientError",
    "DPoPAuth",
    "DelegatedToken",
    "ExpiredTokenError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenError",
    "ProtocolError",
    "ServerError",
    "TemporarilyUnavailableError",
]
