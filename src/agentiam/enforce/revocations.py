"""RevocationFeed, a local copy of the server's revocation set kept by polling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import httpx

from agentiam.enforce.errors import RevocationFeedError

logger = logging.getLogger(__name__)

FEED_PATH = "/v1/revocations"


class RevocationFeed:
    """The revoked ids from ``GET /v1/revocations?since=<seq>``, polled with ETags.

    Every revoked id is kept until its ``expires_at``, the latest expiry of any
    token it can kill. The copy is ``fresh`` while the last successful poll is at
    most ``max_staleness`` seconds old; the middleware fails closed otherwise.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        auth: httpx.BasicAuth,
        *,
        max_staleness: float,
        clock: Callable[[], float],
    ) -> None:
        self._http = http
        self._url = issuer + FEED_PATH
        self._auth = auth
        self._max_staleness = max_staleness
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._seq = 0
        self._etag: str | None = None
        self._last_success: float | None = None
        self._failures = 0

    @property
    def seq(self) -> int:
        """The sequence number of the latest entry applied."""
        return self._seq

    def is_fresh(self, now: float) -> bool:
        """Return whether the last successful poll is within the staleness bound."""
        last = self._last_success
        return last is not None and now - last <= self._max_staleness

    def first_revoked(self, ids: Iterable[str]) -> str | None:
        """Return the first of ``ids`` that is revoked, or None.

        Ids are matched whatever their kind: grant, task, instance and token ids
        are distinct random values or SPIFFE IDs, so this can only revoke more.
        """
        revoked = self._revoked
        if not revoked:
            return None
        for candidate in ids:
            if candidate in revoked:
                return candidate
        return None

    async def poll(self) -> None:
        """Fetch the entries after the current seq and apply them.

        Raises:
            RevocationFeedError: the feed is unreachable or its body is invalid.
        """
        headers = {"If-None-Match": self._etag} if self._etag else {}
        try:
            response = await self._http.get(
                self._url,
                params={"since": str(self._seq)},
                headers=headers,
                auth=self._auth,
            )
        except httpx.HTTPError as err:
            raise RevocationFeedError(f"Failed to poll '{self._url}': {err}") from err

        now = self._clock()
        if response.status_code == 304:
            self._last_success = now
            return
        if response.status_code != 200:
            raise RevocationFeedError(
                f"Polling '{self._url}' returned HTTP {response.status_code}."
            )

        self._apply(response, now)
        self._last_success = now

    def _apply(self, response: httpx.Response, now: float) -> None:
        try:
            body = response.json()
            seq = int(body["seq"])
            entries = [
                (str(entry["id"]), float(entry["expires_at"]))
                for entry in body["entries"]
            ]
        except (ValueError, KeyError, TypeError) as err:
            raise RevocationFeedError(
                f"The revocation feed returned an invalid body: {err}"
            ) from err

        for revoked_id, expires_at in entries:
            previous = self._revoked.get(revoked_id, expires_at)
            self._revoked[revoked_id] = max(previous, expires_at)
        self._seq = max(self._seq, seq)
        self._etag = response.headers.get("ETag")
        self._drop_expired(now)

    def _drop_expired(self, now: float) -> None:
        expired = [key for key, expires_at in self._revoked.items() if expires_at < now]
        for key in expired:
            del self._revoked[key]

    async def run(self, interval: float) -> None:
        """Poll forever every ``interval`` seconds, backing off while it fails."""
        while True:
            delay = interval
            try:
                await self.poll()
                if self._failures:
                    logger.info(
                        "Revocation feed reachable again after %d failures",
                        self._failures,
                    )
                self._failures = 0
            except RevocationFeedError as err:
                self._failures += 1
                delay = min(interval * 2 ** min(self._failures, 5), 30.0)
                # Log the first failure and then one in ten to bound the log volume.
                if self._failures % 10 == 1:
                    logger.warning(
                        "Failed to poll the revocation feed (%d in a row): %s",
                        self._failures,
                        err,
                    )
            await asyncio.sleep(delay)
