"""SPIFFE IDs and trust domains, with no server dependency."""

from __future__ import annotations

from agentiam.spiffe.agent import agent_spiffe_id, parse_agent_spiffe_id
from agentiam.spiffe.errors import SPIFFEIDError
from agentiam.spiffe.id import SPIFFEID, TrustDomain

__all__ = [
    "SPIFFEID",
    "SPIFFEIDError",
    "TrustDomain",
    "agent_spiffe_id",
    "parse_agent_spiffe_id",
]
