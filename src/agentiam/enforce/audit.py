"""DecisionSink, the bounded buffer that ships decisions to the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import httpx

logger = logging.getLogger(__name__)

SINK_PATH = "/v1/audit/decisions"
#: Version of the decision record; bump it when a field changes meaning.
DECISION_VERSION = 1


class DecisionSink:
    """Decisions waiting for ``POST /v1/audit/decisions``, sent in batches.

    A request reserves a slot before it is decided and fills it afterwards, so the
    buffer never holds more than ``max_size`` decisions and a full buffer is seen
    before any work is done. Batches leave the buffer only after the server
    acknowledges them with a 2xx: a failed batch is retried with backoff and may
    be sent twice (at-least-once), so the server deduplicates by ``id``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        auth: httpx.BasicAuth,
        *,
        max_size: int,
        batch_size: int,
        flush_interval: float,
    ) -> None:
        self._http = http
        self._url = issuer + SINK_PATH
        self._auth = auth
        self._max_size = max_size
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._pending: deque[dict[str, Any]] = deque()
        self._reserved = 0
        self._wakeup = asyncio.Event()
        self.sent_batches = 0

    def __len__(self) -> int:
        return len(self._pending)

    def reserve(self) -> bool:
        """Reserve room for one decision; False when the buffer is full."""
        if len(self._pending) + self._reserved >= self._max_size:
            return False
        self._reserved += 1
        return True

    def submit(self, decision: dict[str, Any]) -> None:
        """Queue a decision into a slot taken with ``reserve``."""
        self._reserved -= 1
        self._pending.append(decision)
        if len(self._pending) >= self._batch_size:
            self._wakeup.set()

    def release(self) -> None:
        """Give back a reserved slot that will not be filled."""
        self._reserved -= 1

    async def flush(self) -> None:
        """Send every queued decision once, batch by batch.

        Raises:
            httpx.HTTPError: a batch could not be sent; it stays queued.
        """
        while self._pending:
            batch = [
                self._pending[i]
                for i in range(min(self._batch_size, len(self._pending)))
            ]
            # NOTE: the body {"ver", "decisions"} is this package's proposal, and
            # the server's audit route must accept it.
            response = await self._http.post(
                self._url,
                json={"ver": DECISION_VERSION, "decisions": batch},
                auth=self._auth,
            )
            response.raise_for_status()
            for _ in batch:
                self._pending.popleft()
            self.sent_batches += 1

    async def run(self) -> None:
        """Flush forever: on a full batch or every ``flush_interval`` seconds."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._flush_interval)
            self._wakeup.clear()

            try:
                await self.flush()
                failures = 0
            except httpx.HTTPError as err:
                failures += 1
                delay = min(0.5 * 2**failures, 30.0)
                if failures % 10 == 1:
                    logger.warning(
                        "Failed to send %d audit decisions (%d in a row), retrying "
                        "in %.1f s: %s",
                        len(self._pending),
                        failures,
                        delay,
                        err,
                    )
                await asyncio.sleep(delay)
