"""JWKSCache, the server's verification keys fetched through RFC 8414 metadata."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from agentiam.enforce.errors import JWKSError
from agentiam.jose import JOSEError, VerificationKey

logger = logging.getLogger(__name__)

METADATA_PATH = "/.well-known/oauth-authorization-server"


class JWKSCache:
    """The issuer's JWKS, keyed by ``kid``, refetched when an unknown kid appears.

    The ``jwks_uri`` comes from the issuer's RFC 8414 metadata, whose ``issuer`` must
    equal the configured one (RFC 8414 section 3.3). Keys whose ``alg`` is not in
    ``algorithms`` are dropped. An unknown ``kid`` triggers at most one fetch per
    ``min_refetch_interval`` seconds, however many requests carry unknown kids, so
    forged kids cannot turn the middleware into a load generator.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        *,
        algorithms: frozenset[str],
        min_refetch_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._algorithms = algorithms
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._jwks_uri: str | None = None
        self._last_fetch: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    def lookup(self, kid: str) -> VerificationKey | None:
        """Return the cached key with this kid, without any I/O."""
        return self._keys.get(kid)

    async def ensure(self, kid: str) -> None:
        """Fetch the JWKS when ``kid`` is unknown and the rate limit allows it.

        Raises:
            JWKSError: the metadata or JWKS could not be fetched or parsed.
        """
        if kid in self._keys:
            return

        async with self._lock:
            # Another request may have fetched the key while this one waited.
            if kid in self._keys:
                return
            now = self._clock()
            last = self._last_fetch
            if last is not None and now - last < self._min_refetch_interval:
                return
            self._last_fetch = now
            await self._fetch()

    async def _fetch(self) -> None:
        self.fetch_count += 1
        if self._jwks_uri is None:
            metadata = await self._get_json(self._issuer + METADATA_PATH)
            if metadata.get("issuer") != self._issuer:
                raise JWKSError(
                    f"The metadata issuer '{metadata.get('issuer')}' does not match "
                    f"the configured issuer '{self._issuer}'."
                )
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise JWKSError("The issuer metadata has no 'jwks_uri'.")
            self._jwks_uri = jwks_uri

        jwks = await self._get_json(self._jwks_uri)
        self._keys = self._parse(jwks)
        logger.info(
            "Fetched the JWKS of %s with %d keys", self._issuer, len(self._keys)
        )

    def _parse(self, jwks: dict[str, Any]) -> dict[str, VerificationKey]:
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise JWKSError("The JWKS has no 'keys' array.")

        keys: dict[str, VerificationKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = VerificationKey.from_jwk(entry)
            except JOSEError as err:
                logger.warning(
                    "Skipped an invalid JWK with kid %r: %s", entry.get("kid"), err
                )
                continue
            if key.alg in self._algorithms:
                keys[key.kid] = key
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as err:
            raise JWKSError(f"Failed to fetch '{url}': {err}") from err
        if response.status_code != 200:
            raise JWKSError(f"Fetching '{url}' returned HTTP {response.status_code}.")
        try:
            body = response.json()
        except ValueError as err:
            raise JWKSError(f"The response of '{url}' is not JSON.") from err
        if not isinstance(body, dict):
            raise JWKSError(f"The response of '{url}' is not a JSON object.")
        return body
