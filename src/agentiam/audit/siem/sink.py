"""The audit push sink: committed events to an HTTP endpoint as OCSF, at least once.

The sink reads committed events in ``seq`` order after its cursor (a row of
``audit_sink_cursors``), maps each one with ``ocsf.to_ocsf`` and sends up to
``batch_max`` of them in one ``POST``.  The body is a JSON array of OCSF objects
(``Content-Type: application/json``), in ``seq`` order.  The cursor advances only
after a 2xx response, so delivery is at least once.  After a restart the sink
resends the batch that was in flight when it stopped, and nothing else twice.
A receiver deduplicates on ``metadata.sequence`` or ``metadata.uid``.

Every failure is retried after an exponential backoff with jitter, capped at
``Backoff.cap`` seconds.  Connection errors, timeouts, 429 and 5xx are logged as
warnings.  Any other status is logged as an error naming the status, because an
operator must fix the endpoint or its configuration, and the batch is still
retried, never skipped.  When ``AGENTIAM_AUDIT_SINK_TOKEN`` is set its value is
sent as ``Authorization: Bearer ...``, and it is never logged.

In follow mode the sink polls the log every ``interval_ms`` when it has caught up,
so an event waits at most about that long before it is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from agentiam.audit.errors import AuditError
from agentiam.audit.log import stored_event_from_row
from agentiam.audit.siem.ocsf import to_ocsf
from agentiam.audit.siem.tables import audit_sink_cursors
from agentiam.audit.tables import audit_events

if TYPE_CHECKING:
    from agentiam.config import Settings

log = logging.getLogger("agentiam.audit.siem.sink")

#: The environment variable holding the bearer token for the endpoint, if any.
SINK_TOKEN_ENV: Final = "AGENTIAM_AUDIT_SINK_TOKEN"  # noqa: S105
DEFAULT_SINK_NAME: Final = "default"
NO_CURSOR: Final = -1


class SinkDeliveryError(AuditError):
    """A batch was not acknowledged within the sink's maximum number of attempts."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter: seconds before retry ``attempt``.

    Attributes:
        base: the ceiling of the first retry, in seconds.
        cap: the maximum delay, in seconds.
    """

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, uniform: Callable[[], float]) -> float:
        """Return the delay before retry ``attempt`` (0 for the first retry).

        The delay lies between half the ceiling and the ceiling, where the ceiling
        is ``min(cap, base * 2**attempt)``.  ``uniform`` returns a number in [0, 1).
        """
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt, 64))
        return ceiling / 2 + uniform() * ceiling / 2


class AuditSink:
    """Push committed audit events to one HTTP endpoint (see the module docstring).

    Use it as an async context manager, which opens and closes the HTTP client.

    Args:
        engine: the database engine; the sink reads events and writes its cursor.
        url: the endpoint that receives each batch with ``POST``.
        name: the cursor's key, so several sinks can share one database.
        batch_max: the maximum number of events per request.
        interval_ms: how long follow mode waits once it has caught up.
        timeout: seconds allowed for each request.
        token: bearer token for the endpoint, or ``None``.
        backoff: the retry delays.
        max_attempts: raise ``SinkDeliveryError`` after this many failed attempts
            at one batch; ``None`` retries forever.
        sleep: awaits a number of seconds; tests inject a fake one.
        clock: returns Unix seconds, for the cursor's ``updated_at``.
        uniform: returns a number in [0, 1) for the jitter.
        transport: an httpx transport, for tests.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        url: str,
        name: str = DEFAULT_SINK_NAME,
        batch_max: int = 500,
        interval_ms: int = 1000,
        timeout: float = 5.0,
        token: str | None = None,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[], float] = random.random,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"Sink batch_max is {batch_max}; expected at least 1.")
        self._engine = engine
        self._url = url
        self.name = name
        self._batch_max = batch_max
        self._interval = interval_ms / 1000
        self._backoff = backoff if backoff is not None else Backoff()
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._clock = clock
        self._uniform = uniform

        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout), transport=transport
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AuditSink:
        """Build the sink from the ``audit_sink_*`` settings and the token variable."""
        env = os.environ if environ is None else environ
        return cls(
            engine=engine,
            url=settings.audit_sink_url,
            batch_max=settings.audit_sink_batch_max,
            interval_ms=settings.audit_sink_interval_ms,
            timeout=settings.audit_sink_timeout,
            token=env.get(SINK_TOKEN_ENV) or None,
            **options,
        )

    async def __aenter__(self) -> AuditSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    # -- the cursor --------------------------------------------------------------

    def read_cursor(self) -> int:
        """Return the last delivered seq, or ``NO_CURSOR`` (-1) before any delivery."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(audit_sink_cursors.c.last_seq).where(
                    audit_sink_cursors.c.sink == self.name
                )
            ).scalar()
        return NO_CURSOR if value is None else int(value)

    def _store_cursor(self, seq: int) -> None:
        # The cursor only moves forward, so a second sink process with the same
        # name that lags behind cannot move it back.
        table = audit_sink_cursors
        now = self._clock()
        with self._engine.begin() as conn:
            moved = conn.execute(
                update(table)
                .where(table.c.sink == self.name, table.c.last_seq < seq)
                .values(last_seq=seq, updated_at=now)
            ).rowcount
            if moved:
                return
            exists = conn.execute(
                select(table.c.sink).where(table.c.sink == self.name)
            ).first()
            if exists is None:
                conn.execute(
                    insert(table).values(sink=self.name, last_seq=seq, updated_at=now)
                )

    def _load_batch(self, after: int) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(self._batch_max)
            ).all()
        return [to_ocsf(stored_event_from_row(row)) for row in rows]

    # -- delivery ----------------------------------------------------------------

    async def deliver_batch(self) -> int:
        """Send the next batch after the cursor, retrying until it is acknowledged.

        Returns:
            The number of events delivered; 0 when the sink has caught up.

        Raises:
            SinkDeliveryError: ``max_attempts`` attempts failed.
            AuditError: a stored event cannot be decoded.
            SQLAlchemyError: the database cannot be read or the cursor written.
        """
        after = await asyncio.to_thread(self.read_cursor)
        batch = await asyncio.to_thread(self._load_batch, after)
        if not batch:
            return 0

        first = batch[0]["metadata"]["sequence"]
        last = batch[-1]["metadata"]["sequence"]
        body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False)
        await self._post_until_acknowledged(body.encode("utf-8"), first, last)

        await asyncio.to_thread(self._store_cursor, last)
        log.debug(
            "Delivered audit events to the sink",
            extra={"sink": self.name, "first_seq": first, "last_seq": last},
        )
        return len(batch)

    async def deliver_pending(self) -> int:
        """Send batches until the sink has caught up; return the number of events."""
        total = 0
        while True:
            sent = await self.deliver_batch()
            total += sent
            if sent < self._batch_max:
                return total

    async def run(self) -> None:
        """Deliver events for as long as it runs; cancel the task to stop.

        A database or decoding error is logged and retried after the interval, so
        the loop only ends when it is cancelled.
        """
        log.info(
            "Audit sink started",
            extra={"sink": self.name, "host": httpx.URL(self._url).host},
        )
        try:
            while True:
                sent = await self._deliver_logged()
                if sent < self._batch_max:
                    await self._sleep(self._interval)
        finally:
            log.info("Audit sink stopped", extra={"sink": self.name})

    async def _deliver_logged(self) -> int:
        try:
            return await self.deliver_batch()
        except (AuditError, SQLAlchemyError) as err:
            log.error(
                "Failed to read audit events for the sink",
                extra={"sink": self.name, "error": repr(err)},
            )
            return 0

    async def _post_until_acknowledged(
        self, body: bytes, first: int, last: int
    ) -> None:
        attempt = 0
        while True:
            if await self._post_once(body, first, last, attempt):
                return

            attempt += 1
            if self._max_attempts is not None and attempt >= self._max_attempts:
                raise SinkDeliveryError(
                    f"Audit sink {self.name!r} failed to deliver events {first} to "
                    f"{last} in {attempt} attempts."
                )
            await self._sleep(self._backoff.delay(attempt - 1, self._uniform))

    async def _post_once(
        self, body: bytes, first: int, last: int, attempt: int
    ) -> bool:
        fields: dict[str, Any] = {
            "sink": self.name,
            "first_seq": first,
            "last_seq": last,
            "attempt": attempt + 1,
        }
        try:
            response = await self._client.post(self._url, content=body)
        except httpx.TransportError as err:
            # Connection errors, timeouts and protocol errors are all transient.
            log.warning(
                "Failed to deliver audit events to the sink",
                extra={**fields, "error": type(err).__name__},
            )
            return False

        status = response.status_code
        if 200 <= status < 300:
            return True
        if status == 429 or status >= 500:
            log.warning(
                "Audit sink endpoint is unavailable",
                extra={**fields, "status": status},
            )
        else:
            log.error(
                "Audit sink endpoint rejected events with status %d",
                status,
                extra={**fields, "status": status},
            )
        return False


def start_audit_sink(settings: Settings, engine: Engine) -> asyncio.Task[None] | None:
    """Start the sink as a background task when ``audit_sink_url`` is set.

    Returns:
        The task, which the caller cancels to stop the sink, or ``None`` when no
        sink is configured.
    """
    if not settings.audit_sink_url:
        return None
    sink = AuditSink.from_settings(settings, engine)
    return asyncio.create_task(_run_sink(sink), name="audit-sink")


async def _run_sink(sink: AuditSink) -> None:
    async with sink:
        await sink.run()
