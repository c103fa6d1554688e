"""Errors of the config package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError


class ConfigError(AgentIAMError):
    """A configuration key is unknown or its value is invalid; the start stops."""
