"""Request helpers shared by the Agent methods: DPoP headers and error mapping."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from agentiam.client.auth import htu_of
from agentiam.client.errors import ProtocolError, ServerError, server_error
from agentiam.jose import SigningKey, create_dpop_proof

logger = logging.getLogger(__name__)


def dpop_headers(
    key: SigningKey, method: str, url: str, now: float, token: str | None = None
) -> dict[str, str]:
    """Return the DPoP header, and ``Authorization: DPoP`` when a token is given.

    With a token the proof carries ``ath`` (RFC 9449 section 7); without one it is a
    proof for the token endpoint or for attestation (section 4.3).
    """
    proof = create_dpop_proof(
        key, htm=method, htu=htu_of(httpx.URL(url)), now=now, access_token=token
    )
    headers = {"DPoP": proof}
    if token is not None:
        headers["Authorization"] = f"DPoP {token}"
    return headers


def error_from_response(response: httpx.Response) -> ServerError:
    """Turn an error response into the matching ServerError subclass."""
    try:
        body = response.json()
    except ValueError:
        body = None

    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        if not isinstance(description, str):
            description = ""
        return server_error(body["error"], description, response.status_code)

    code = "server_error" if response.status_code >= 500 else "invalid_request"
    return server_error(code, "", response.status_code)


async def send(
    http: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    *,
    form: Mapping[str, str | Sequence[str]] | None = None,
    json_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """POST a form or JSON body and return the JSON object of a 2xx response.

    Raises:
        ServerError: the server answered with an error status.
        ProtocolError: a 2xx response has no JSON object body.
    """
    response = await http.post(url, headers=dict(headers), data=form, json=json_body)
    logger.debug("POST %s returned %d", url, response.status_code)
    if response.status_code >= 400:
        raise error_from_response(response)

    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError as err:
        raise ProtocolError(f"The response of '{url}' is not JSON.") from err
    if not isinstance(body, dict):
        raise ProtocolError(f"The response of '{url}' is not a JSON object.")
    return body
