"""The audit push sink against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.siem.sink import AuditSink, Backoff, SinkDeliveryError
from agentiam.audit.siem.tables import audit_sink_cursors
from agentiam.config import load_settings
from agentiam.config.errors import ConfigError
from agentiam.storage.metadata import metadata

TOKEN = "sink-test-bearer-value"


class Receiver:
    """An HTTP endpoint that records each batch and answers from a status script.

    ``script`` holds the statuses of the next requests; when it is empty the
    receiver answers 200.  A batch is recorded whatever the status, so a batch
    the sink resends shows up twice.
    """

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[int] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.batches.append(body)
                receiver.headers.append(dict(self.headers))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}
        )
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def seqs(self) -> list[int]:
        return [
            item["metadata"]["sequence"] for batch in self.batches for item in batch
        ]


class FakeSleep:
    """Records every delay and yields to the loop instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hooks: dict[int, Any] = {}

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        hook = self.hooks.pop(len(self.delays), None)
        if hook is not None:
            hook()
        await asyncio.sleep(0)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    if server._server is not None:
        server.stop()


@pytest.fixture
def engine(database: tuple[Any, Any]) -> Any:
    engine, _writer = database
    metadata.create_all(engine, tables=[audit_sink_cursors])
    return engine


def _record(audit_log: AuditLog, count: int) -> None:
    for index in range(count):
        audit_log.record_sync(
            AuditEvent("task.opened", "allow", "opened", task_path=[f"t-{index}"])
        )


def _sink(engine: Any, url: str, **options: Any) -> AuditSink:
    options.setdefault("batch_max", 4)
    options.setdefault("uniform", lambda: 0.5)
    return AuditSink(engine=engine, url=url, token=TOKEN, timeout=2, **options)


async def _pending(sink: AuditSink) -> int:
    async with sink:
        return await sink.deliver_pending()


def test_sink_delivers_every_event_in_order(
    engine: Any, audit_log: AuditLog, receiver: Receiver
) -> None:
    _record(audit_log, 10)
    sink = _sink(engine, receiver.url, sleep=FakeSleep())

    delivered = asyncio.run(_pending(sink))

    assert delivered == 10
    assert receiver.seqs() == list(range(10))
    assert [len(batch) for batch in receiver.batches] == [4, 4, 2]
    assert sink.read_cursor() == 9
    assert receiver.headers[0]["Authorization"] == f"Bearer {TOKEN}"
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.batches[0][0]["class_uid"] == 3003


def test_sink_caught_up_sends_nothing(
    engine: Any, audit_log: AuditLog, receiver: Receiver
) -> None:
    _record(audit_log, 3)
    asyncio.run(_pending(_sink(engine, receiver.url)))

    delivered = asyncio.run(_pending(_sink(engine, receiver.url)))

    assert delivered == 0
    assert len(receiver.batches) == 1


def test_sink_restart_resends_only_unacknowledged_batch(
    engine: Any, audit_log: AuditLog, receiver: Receiver
) -> None:
    _record(audit_log, 10)
    # The second batch reaches the receiver, but its 500 makes the first sink
    # give up, as if it stopped before the acknowledgement arrived.
    receiver.script = [200, 500]
    first = _sink(engine, receiver.url, max_attempts=1, sleep=FakeSleep())
    with pytest.raises(SinkDeliveryError, match="failed to deliver events 4 to 7"):
        asyncio.run(_pending(first))
    assert first.read_cursor() == 3

    restarted = _sink(engine, receiver.url, sleep=FakeSleep())
    delivered = asyncio.run(_pending(restarted))

    assert delivered == 6
    assert receiver.seqs() == [0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 8, 9]
    assert restarted.read_cursor() == 9
    with engine.connect() as conn:
        rows = conn.execute(select(audit_sink_cursors)).all()
    assert [(row.sink, row.last_seq) for row in rows] == [("default", 9)]


def test_sink_survives_receiver_outage(
    engine: Any,
    audit_log: AuditLog,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _record(audit_log, 6)
    receiver.stop()
    sleep = FakeSleep()
    # Connection refused for three attempts, then two 503s, then up.
    sleep.hooks[3] = lambda: (receiver.script.extend([503, 503]), receiver.start())
    backoff = Backoff(base=0.5, cap=2.0)
    sink = _sink(engine, receiver.url, sleep=sleep, backoff=backoff)

    with caplog.at_level(logging.WARNING, logger="agentiam.audit.siem.sink"):
        delivered = asyncio.run(_pending(sink))

    assert delivered == 6
    assert receiver.seqs() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5]
    assert sink.read_cursor() == 5
    # uniform() is 0.5, so each delay is three quarters of its capped ceiling.
    assert sleep.delays == [0.375, 0.75, 1.5, 1.5, 1.5]
    assert all(delay <= backoff.cap for delay in sleep.delays)
    refused = [r for r in caplog.records if getattr(r, "error", "") == "ConnectError"]
    unavailable = [r for r in caplog.records if getattr(r, "status", 0) == 503]
    assert len(refused) == 3
    assert len(unavailable) == 2
    assert TOKEN not in caplog.text


def test_sink_client_error_logged_and_retried(
    engine: Any,
    audit_log: AuditLog,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _record(audit_log, 2)
    receiver.script = [400, 401]
    sleep = FakeSleep()
    sink = _sink(engine, receiver.url, sleep=sleep)

    with caplog.at_level(logging.WARNING, logger="agentiam.audit.siem.sink"):
        delivered = asyncio.run(_pending(sink))

    assert delivered == 2
    assert receiver.seqs() == [0, 1, 0, 1, 0, 1]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "Audit sink endpoint rejected events with status 400",
        "Audit sink endpoint rejected events with status 401",
    ]
    assert len(sleep.delays) == 2


def test_sink_rate_limit_is_retried(
    engine: Any, audit_log: AuditLog, receiver: Receiver
) -> None:
    _record(audit_log, 1)
    receiver.script = [429]

    delivered = asyncio.run(_pending(_sink(engine, receiver.url, sleep=FakeSleep())))

    assert delivered == 1
    assert receiver.seqs() == [0, 0]


def test_sink_follow_delivers_new_events(
    engine: Any, audit_log: AuditLog, receiver: Receiver
) -> None:
    _record(audit_log, 5)

    async def follow() -> None:
        sink = _sink(engine, receiver.url, interval_ms=5)
        async with sink:
            task = asyncio.create_task(sink.run())
            await _wait_for(receiver, 5)
            await asyncio.to_thread(_record, audit_log, 3)
            await _wait_for(receiver, 8)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(follow())

    assert receiver.seqs() == list(range(8))


async def _wait_for(receiver: Receiver, count: int) -> None:
    for _ in range(500):
        if len(receiver.seqs()) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"receiver got {receiver.seqs()}, expected {count} events")


@pytest.mark.parametrize(
    ("attempt", "uniform", "expected"),
    [(0, 0.0, 0.25), (0, 0.999, 0.49975), (3, 0.0, 2.0), (10, 0.0, 15.0),
     (10, 0.999, 29.985), (10_000, 0.5, 22.5)],
)  # fmt: skip
def test_backoff_delay_bounds(attempt: int, uniform: float, expected: float) -> None:
    delay = Backoff(base=0.5, cap=30.0).delay(attempt, lambda: uniform)

    assert delay == pytest.approx(expected)


def test_settings_sink_defaults() -> None:
    settings = load_settings(environ={})

    assert settings.audit_sink_url == ""
    assert settings.audit_sink_batch_max == 500
    assert settings.audit_sink_interval_ms == 1000
    assert settings.audit_sink_timeout == 5


def test_settings_reject_bad_sink_url() -> None:
    with pytest.raises(ConfigError, match="'audit_sink_url': expected an http"):
        load_settings(environ={"AGENTIAM_AUDIT_SINK_URL": "ftp://siem"})


def test_settings_reject_zero_batch() -> None:
    with pytest.raises(ConfigError, match="expected an integer of at least 1"):
        load_settings(environ={"AGENTIAM_AUDIT_SINK_BATCH_MAX": "0"})


def test_settings_token_is_not_a_setting() -> None:
    settings = load_settings(environ={"AGENTIAM_AUDIT_SINK_TOKEN": TOKEN})

    assert TOKEN not in repr(settings)
