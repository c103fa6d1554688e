"""RFC 8414 authorization server metadata and the JWKS endpoint.

The metadata advertises only what the server implements.  The token endpoint takes
no client secret (``none``): the caller proves itself with its SVID or CIBA request
and a DPoP proof of its bound key.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentiam.api.context import ServerContext

CIBA_GRANT_TYPE = "urn:openid:params:grant-type:ciba"
TOKEN_EXCHANGE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
SIGNING_ALGORITHMS = ["ES256", "EdDSA"]

# Clients may cache the JWKS for this many seconds. A client that sees an unknown
# kid must fetch it again, because a key rotated in meanwhile is not in its copy.
JWKS_MAX_AGE = 60


def metadata(ctx: ServerContext) -> dict[str, Any]:
    """Return the authorization server metadata document for ``ctx``."""
    issuer = ctx.settings.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "backchannel_authentication_endpoint": f"{issuer}/bc-authorize",
        "grant_types_supported": [CIBA_GRANT_TYPE, TOKEN_EXCHANGE_GRANT_TYPE],
        "response_types_supported": [],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "dpop_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "service_documentation": f"{issuer}/v1/openapi.json",
    }


def routes(ctx: ServerContext) -> list[BaseRoute]:
    """Return the two well-known metadata routes and ``GET /jwks``."""

    async def serve_metadata(request: Request) -> Response:
        return JSONResponse(metadata(ctx), headers={"Cache-Control": "max-age=300"})

    async def serve_jwks(request: Request) -> Response:
        return JSONResponse(
            ctx.keyring.jwks(),
            headers={"Cache-Control": f"max-age={JWKS_MAX_AGE}"},
            media_type="application/jwk-set+json",
        )

    return [
        Route(
            "/.well-known/oauth-authorization-server", serve_metadata, methods=["GET"]
        ),
        Route("/.well-known/openid-configuration", serve_metadata, methods=["GET"]),
        Route("/jwks", serve_jwks, methods=["GET"]),
    ]
