"""DPoPAuth, an httpx.Auth that sends a DPoP-bound token with a fresh proof."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx

from agentiam.client.tokens import DelegatedToken
from agentiam.jose import SigningKey, create_dpop_proof


def htu_of(url: httpx.URL) -> str:
    """Return the DPoP ``htu`` of a URL: the URL without query and fragment."""
    return str(url.copy_with(query=None, fragment=None))


class DPoPAuth(httpx.Auth):
    """Authentication that adds ``Authorization: DPoP <token>`` and a DPoP proof.

    Every request gets a new proof with its own ``jti``, the request's method and URL
    and ``ath`` (RFC 9449 section 7). When the server answers 401 with a
    ``DPoP-Nonce`` header, the request is sent once more with that nonce.
    """

    def __init__(
        self,
        key: SigningKey,
        token: DelegatedToken | str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        if isinstance(token, DelegatedToken):
            self._token = token.access_token
        else:
            self._token = token
        self._clock = clock
        self._nonce: str | None = None

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request, and sign it again with the server's nonce if asked."""
        self._sign(request)
        response = yield request

        nonce = response.headers.get("DPoP-Nonce")
        if response.status_code == 401 and nonce and nonce != self._nonce:
            self._nonce = nonce
            self._sign(request)
            yield request

    def _sign(self, request: httpx.Request) -> None:
        proof = create_dpop_proof(
            self._key,
            htm=request.method,
            htu=htu_of(request.url),
            now=self._clock(),
            access_token=self._token,
            nonce=self._nonce,
        )
        request.headers["Authorization"] = f"DPoP {self._token}"
        request.headers["DPoP"] = proof
