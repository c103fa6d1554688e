"""Configuration: the frozen ``Settings`` object and its loader."""

from __future__ import annotations

from agentiam.config.errors import ConfigError
from agentiam.config.loader import load_settings
from agentiam.config.settings import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
