"""Errors raised while parsing SPIFFE IDs and trust domains."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class SPIFFEIDError(AgentIAMError, ValueError):
    """A SPIFFE ID or trust domain name is malformed.

    The message names the rejected value in quotes and the rule it breaks.
    """
