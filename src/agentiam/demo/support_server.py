"""Uvicorn factory for the support-desk API, configured from the environment."""

from __future__ import annotations

import os

from agentiam.demo.support_api import create_app
from agentiam.enforce import EnforcementMiddleware


def create() -> EnforcementMiddleware:
    """Build the support-desk API from ``SUPPORT_API_*`` environment variables."""
    return create_app(
        issuer=os.environ["SUPPORT_API_ISSUER"],
        client_id=os.environ["SUPPORT_API_CLIENT_ID"],
        client_secret=os.environ["SUPPORT_API_CLIENT_SECRET"],
    )
