"""Group commit: many units of work, one transaction, one fsync.

Callers submit a unit of work, a callable that runs statements on a
``Connection``.  One writer thread takes pending units, up to ``batch_max`` of them
or whatever arrives within ``batch_wait_ms`` of the first, and runs them in one
transaction, each inside its own SAVEPOINT.  A unit that raises is rolled back to
its savepoint and only its future fails, with its own exception.  After the COMMIT
every other future is resolved with its unit's return value.  If the BEGIN or the
COMMIT fails, every future of the batch fails with ``TemporarilyUnavailableError``
and nothing of the batch is kept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from agentiam.errors import TemporarilyUnavailableError
from agentiam.storage.errors import WriterClosedError

T = TypeVar("T")

log = logging.getLogger("agentiam.storage.writer")

Work = Callable[[Connection], Any]


@dataclass(slots=True)
class _Unit:
    work: Work
    resolve: Callable[[Any], None]
    fail: Callable[[BaseException], None]
    result: Any = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitWriter:
    """Run submitted units of work in batched transactions on one writer thread."""

    def __init__(
        self, engine: Engine, *, batch_max: int = 512, batch_wait_ms: float = 2
    ) -> None:
        self.engine = engine
        self.batch_max = batch_max
        self.batch_wait = batch_wait_ms / 1000
        self._queue: queue.SimpleQueue[_Unit | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether the writer thread is accepting work."""
        return self._thread is not None and not self._closed

    def start(self) -> None:
        """Start the writer thread; calling it again while running does nothing."""
        with self._lock:
            if self._closed:
                raise WriterClosedError("the group-commit writer was closed")
            if self._thread is not None:
                return

            self._thread = threading.Thread(
                target=self._run, name="agentiam-group-commit", daemon=True
            )
            self._thread.start()
        log.info("group-commit writer started", extra={"batch_max": self.batch_max})

    def close(self) -> None:
        """Commit everything already submitted, then stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread

        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join()
        log.info("group-commit writer stopped")

    async def submit(self, work: Callable[[Connection], T]) -> T:
        """Queue ``work`` and return its result once its batch has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def resolve(value: Any) -> None:
            _call_in_loop(loop, future, value, None)

        def fail(error: BaseException) -> None:
            _call_in_loop(loop, future, None, error)

        self._put(_Unit(work, resolve, fail))
        return await future

    def run_sync(self, work: Callable[[Connection], T]) -> T:
        """Queue ``work`` from synchronous code (the CLI) and block until committed."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Unit(work, future.set_result, future.set_exception))
        return future.result()

    def _put(self, unit: _Unit) -> None:
        if not self.running:
            raise WriterClosedError(
                "the group-commit writer is not running: call start() first"
            )
        self._queue.put(unit)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break

            batch, stopping = self._collect(first)
            self._commit(batch)

        # Units queued after the stop marker are failed, never dropped silently.
        self._drain_after_stop()

    def _collect(self, first: object) -> tuple[list[_Unit], bool]:
        """Gather units until the batch is full or the wait after the first ends."""
        assert isinstance(first, _Unit)
        batch = [first]
        deadline = time.monotonic() + self.batch_wait

        while len(batch) < self.batch_max:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else (self._queue.get_nowait())
                )
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Unit)
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            with (
                self.engine.connect().execution_options(sqlite_immediate=True) as conn,
                conn.begin(),
            ):
                for unit in batch:
                    _run_unit(conn, unit)
        except Exception as exc:
            log.exception(
                "group commit failed", extra={"units": len(batch), "error": repr(exc)}
            )
            for unit in batch:
                unit.fail(
                    TemporarilyUnavailableError(reason=f"group commit failed: {exc!r}")
                )
            return

        for unit in batch:
            if unit.error is not None:
                unit.fail(unit.error)
            else:
                unit.resolve(unit.result)

    def _drain_after_stop(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Unit):
                item.fail(WriterClosedError("the group-commit writer was closed"))


def _run_unit(conn: Connection, unit: _Unit) -> None:
    savepoint = conn.begin_nested()
    try:
        unit.result = unit.work(conn)
    except Exception as exc:
        savepoint.rollback()
        unit.error = exc
        return
    savepoint.commit()


def _call_in_loop(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    value: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        # The caller's event loop has closed, so no caller awaits this future.
        log.warning("group commit result dropped: event loop closed")
