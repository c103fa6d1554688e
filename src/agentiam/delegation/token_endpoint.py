"""The grant handlers of the token endpoint (RFC 6749 section 3.2), POST /token.

``agentiam.api.app`` parses the form, dispatches on ``grant_type`` to the handlers
that ``grant_handlers`` returns, and rejects a missing ``grant_type`` with
``invalid_request`` and an unknown one with ``unsupported_grant_type``. The handlers
are the token exchange (RFC 8693) and the OIDC CIBA grant of the approvals package,
which is imported only when the handlers are built.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request

from agentiam.delegation.exchange import TokenExchangeHandler

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)

CIBA_HANDLER_MODULE = "agentiam.approvals.ciba_grant"
CIBA_HANDLER_CLASS = "CIBAGrantHandler"


class GrantHandler(Protocol):
    """One grant type of the token endpoint."""

    grant_type: str

    async def handle(
        self, form: Mapping[str, str], request: Request, ctx: ServerContext
    ) -> dict[str, Any]:
        """Check the request and return the JSON token response."""
        ...


def grant_handlers(ctx: ServerContext) -> list[GrantHandler]:
    """Return the token exchange handler and, when installed, the CIBA handler.

    Without the approvals package the CIBA grant type is unsupported, which the
    endpoint rejects with ``unsupported_grant_type``.
    """
    handlers: list[GrantHandler] = [TokenExchangeHandler()]
    try:
        module = importlib.import_module(CIBA_HANDLER_MODULE)
    except ModuleNotFoundError as err:
        if err.name != CIBA_HANDLER_MODULE:
            raise
        logger.warning(
            "CIBA grant handler not installed", extra={"module": CIBA_HANDLER_MODULE}
        )
        return handlers
    handlers.append(getattr(module, CIBA_HANDLER_CLASS)())
    return handlers
