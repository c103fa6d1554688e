"""DecisionSink, the bounded buffer that ships decisions to the audit log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
from collections import deque
from typing import Any

import httpx

logger = logging.getLogger(__name__)

SINK_PATH = "/v1/audit/decisions"
#: Version of the decision record; bump it when a field changes meaning.
DECISION_VERSION = 1
#: The ``outcome`` of an allowed request whose application then raised. A record
#: without ``outcome`` is ``granted`` when allowed and ``refused`` when denied.
OUTCOME_ERROR = "error"

# Statuses that mean "send it again later": credentials (401), timeouts (408) and
# rate limits (429). Every other 4xx rejects the batch itself, so resending it
# unchanged would block the buffer for good.
_RETRYABLE_4XX = frozenset({401, 408, 429})
# Statuses whose rejection may be caused by a single record (a malformed entry or
# a batch too large), so halving the batch isolates it.
_SPLITTABLE = frozenset({400, 413, 422})
_MAX_LOGGED_DESCRIPTION = 200

# Decision ids are 18 random bytes (144 bits) in base64url, 24 characters without
# padding because 18 is a multiple of 3. They are drawn and encoded 256 at a time,
# which costs a request a list pop instead of a system call and an encoding.
_ID_BYTES = 18
_ID_LENGTH = 24
_IDS_PER_DRAW = 256
_unused_ids: list[str] = []
# A forked worker must not hand out the ids its parent may also use.
os.register_at_fork(after_in_child=_unused_ids.clear)


def new_decision_id() -> str:
    """Return a new random decision id, by which the audit log deduplicates."""
    try:
        return _unused_ids.pop()
    except IndexError:
        pass
    raw = secrets.token_bytes(_ID_BYTES * _IDS_PER_DRAW)
    text = base64.urlsafe_b64encode(raw).decode("ascii")
    _unused_ids.extend(
        text[i : i + _ID_LENGTH] for i in range(_ID_LENGTH, len(text), _ID_LENGTH)
    )
    return text[:_ID_LENGTH]


class DecisionSink:
    """Decisions waiting for ``POST /v1/audit/decisions``, sent in batches.

    A request reserves a slot before it is decided and fills it afterwards, so the
    buffer never holds more than ``max_size`` decisions and a full buffer is seen
    before any work is done. Batches leave the buffer only after the server
    acknowledges them with a 2xx: a failed batch is retried with backoff and may
    be sent twice (at-least-once), so the server deduplicates by ``id``.

    A batch the server rejects permanently (a 4xx other than 401, 408 and 429) is
    never retried as it is. A 400, 413 or 422 batch is halved until the rejected
    records stand alone, and only those are dropped; any other such status drops
    the batch. Every drop is logged at ERROR and counted in ``dropped``.
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
        self.dropped = 0

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
            httpx.HTTPError: a batch could not be sent for a reason that may pass
                (a connection error, 401, 408, 429 or 5xx); it stays queued.
        """
        while self._pending:
            batch = [
                self._pending[i]
                for i in range(min(self._batch_size, len(self._pending)))
            ]
            await self._deliver(batch, top=True)

    async def _deliver(self, batch: list[dict[str, Any]], *, top: bool) -> None:
        """Send ``batch``, the oldest queued decisions, and settle it.

        A settled record leaves the queue, accepted or dropped. Halves are sent in
        order, so the settled records are always the oldest ones.
        """
        # NOTE: the body {"ver", "decisions"} is this package's proposal, and the
        # server's audit route must accept it.
        response = await self._http.post(
            self._url,
            json={"ver": DECISION_VERSION, "decisions": batch},
            auth=self._auth,
        )
        status = response.status_code
        if response.is_success:
            self._settle(len(batch))
            self.sent_batches += 1
            return
        if not 400 <= status < 500 or status in _RETRYABLE_4XX:
            response.raise_for_status()

        description = _error_description(response)
        if top:
            logger.error(
                "The audit log rejected %d decisions with status %d: %s",
                len(batch),
                status,
                description,
            )
        if len(batch) > 1 and status in _SPLITTABLE:
            half = len(batch) // 2
            await self._deliver(batch[:half], top=False)
            await self._deliver(batch[half:], top=False)
            return

        self._settle(len(batch))
        self.dropped += len(batch)
        logger.error(
            "Dropped %d audit decisions the audit log rejected with status %d "
            "(%d dropped in total): %s",
            len(batch),
            status,
            self.dropped,
            description,
        )

    def _settle(self, count: int) -> None:
        for _ in range(count):
            self._pending.popleft()

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


def _error_description(response: httpx.Response) -> str:
    """Return the server's ``error_description``, or its ``error``, shortened."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = ""
    if isinstance(body, dict):
        for name in ("error_description", "error"):
            value = body.get(name)
            if isinstance(value, str) and value:
                text = value
                break
    if not text:
        text = response.reason_phrase or "no description"
    return text[:_MAX_LOGGED_DESCRIPTION]
