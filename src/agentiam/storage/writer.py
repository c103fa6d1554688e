"""Group commit: many units of work, one transaction, one fsync.

Callers submit a unit of work, a callable that runs statements on a ``Connection``.
One writer thread takes pending units, up to ``batch_max`` of them or whatever
arrives within ``batch_wait_ms`` of the first while the gap between two arrivals
stays under ``batch_gap_ms`` and the batch is smaller than the last one (a lone unit
always waits one gap), and runs them in one transaction, each inside its own
SAVEPOINT.  A batch of one unit runs without a SAVEPOINT, because rolling back its
transaction undoes nothing else.  It keeps its connection from one batch to the next
while it is busy.  A unit that raises is rolled back to its savepoint, or with its
transaction when it ran alone, and only its future fails, with its own exception.
After the COMMIT every other future is resolved with its unit's return value.  If
the BEGIN or the COMMIT fails, every future of the batch fails with
``TemporarilyUnavailableError`` and nothing of the batch is kept.

``submit_batched`` queues one item for a batch function instead of a unit.  The
adjacent items of one batch function in a batch run as one call inside one
SAVEPOINT, so a hot path such as the audit log pays one statement per batch, not
one per item.  If that call raises, each of its items runs again alone in its own
SAVEPOINT, so only the items that fail alone fail.  Futures are resolved with one
wake-up of each caller's event loop per batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine, RootTransaction

from agentiam.errors import TemporarilyUnavailableError
from agentiam.storage.errors import WriterClosedError

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741

log = logging.getLogger("agentiam.storage.writer")

Work = Callable[[Connection], Any]
# Runs the items in order on the connection and returns one result per item.
BatchWork = Callable[[Connection, Sequence[Any]], Sequence[Any]]


@dataclass(slots=True)
class _Unit:
    """One queued unit or batched item and the future that waits for it.

    ``loop`` is the caller's event loop for ``submit``; ``None`` means
    ``future`` is a ``concurrent.futures.Future`` from ``run_sync``.
    """

    work: Work | None
    batch_work: BatchWork | None
    item: Any
    loop: asyncio.AbstractEventLoop | None
    future: Any
    result: Any = None
    error: BaseException | None = None


_STOP = object()

# Seconds a kept connection may stay unused before the writer checks out a
# fresh one, so that a connection the server dropped meanwhile is replaced.
CONNECTION_IDLE_S = 1.0


class GroupCommitWriter:
    """Run submitted units of work in batched transactions on one writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 512,
        batch_wait_ms: float = 2,
        batch_gap_ms: float = 0.5,
    ) -> None:
        self.engine = engine
        self.batch_max = batch_max
        self.batch_wait = batch_wait_ms / 1000
        # Under load, units queue up while the previous batch commits, so waiting
        # after the queue runs dry only delays the callers already in the batch.
        self.batch_gap = min(batch_gap_ms, batch_wait_ms) / 1000
        # The size of the last batch: once a batch is as large, the callers that
        # its commit woke are likely all back, so the writer stops waiting.
        self._last_size = batch_max
        self._conn: Connection | None = None
        self._conn_used_at = 0.0
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
        self._put(_Unit(work, None, None, loop, future))
        return await future

    async def submit_batched(
        self, work: Callable[[Connection, Sequence[I]], Sequence[T]], item: I
    ) -> T:
        """Queue ``item`` for ``work``; return its result once its batch committed.

        ``work(conn, items)`` must return one result per item, in order.  Adjacent
        items whose ``work`` compares equal (the same function, or the same bound
        method of one object) share a call.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        unit = _Unit(None, work, item, loop, future)
        if self._thread is not None and not self._closed:
            # The check that ``_put`` makes, without its two calls, because the
            # audit log submits every event here.
            self._queue.put(unit)
        else:
            self._put(unit)
        return await future

    def run_sync(self, work: Callable[[Connection], T]) -> T:
        """Queue ``work`` from synchronous code (the CLI) and block until committed."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Unit(work, None, None, None, future))
        return future.result()

    def _put(self, unit: _Unit) -> None:
        if not self.running:
            raise WriterClosedError(
                "the group-commit writer is not running: call start() first"
            )
        self._queue.put(unit)

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is _STOP:
                    break

                batch, stopping = self._collect(first)
                self._last_size = len(batch)
                self._commit(batch)
        finally:
            # A failure here must not skip the drain below, so it is only logged.
            self._discard_connection()

        # Units queued after the stop marker are failed, never dropped silently.
        self._drain_after_stop()

    def _connection(self) -> Connection:
        """Return the connection the writer keeps from one batch to the next.

        A checkout from the pool and the checkin after it cost CPU time on every
        batch, so the writer keeps one connection.  It returns it to the pool
        after a failed batch or when it was idle for ``CONNECTION_IDLE_S``, and
        the next checkout runs the pool's checks again, such as PostgreSQL's
        pre-ping.
        """
        now = time.monotonic()
        if self._conn is not None and now - self._conn_used_at > CONNECTION_IDLE_S:
            self._release_connection()
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(sqlite_immediate=True)
        self._conn_used_at = now
        return self._conn

    def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _discard_connection(self) -> None:
        """Return the connection to the pool, logging what that raises."""
        try:
            self._release_connection()
        except Exception as exc:
            # The batch has failed already, and the next one checks out afresh.
            log.warning(
                "group commit connection not returned", extra={"error": repr(exc)}
            )

    def _collect(self, first: object) -> tuple[list[_Unit], bool]:
        """Gather units until the batch is full, the wait ends or arrivals pause.

        Units already queued are always taken, up to ``batch_max``.  The writer
        waits for more only while the batch is smaller than the last one.  A lone
        unit always waits one gap, because at moderate load each batch would
        otherwise hold one unit and pay the whole fixed cost of a commit.
        """
        assert isinstance(first, _Unit)
        batch = [first]
        deadline = time.monotonic() + self.batch_wait

        # The queue is drained with get_nowait and a short sleep in between, never
        # with SimpleQueue.get(timeout=...): in CPython 3.11 that call can block
        # forever when it takes the queue's lock with the queue empty after its
        # deadline has passed (it then waits with a negative timeout).  Under load
        # that happens, and with every caller waiting on this batch nothing would
        # ever wake the writer.
        waited = False
        while len(batch) < self.batch_max:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if waited or len(batch) >= max(self._last_size, 2):
                    break
                remaining = min(deadline - time.monotonic(), self.batch_gap)
                if remaining <= 0:
                    break
                time.sleep(remaining)
                waited = True
                continue
            waited = False
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Unit)
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            conn = self._connection()
            with conn.begin() as transaction:
                if len(batch) == 1:
                    _run_alone(transaction, conn, batch[0])
                else:
                    for group in _groups(batch):
                        _run_group(conn, group)
        except Exception as exc:
            log.exception(
                "group commit failed", extra={"units": len(batch), "error": repr(exc)}
            )
            self._discard_connection()
            for unit in batch:
                unit.error = TemporarilyUnavailableError(
                    reason=f"group commit failed: {exc!r}"
                )
        _settle(batch)

    def _drain_after_stop(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Unit):
                item.error = WriterClosedError("the group-commit writer was closed")
                _settle([item])


def _groups(batch: list[_Unit]) -> list[list[_Unit]]:
    """Split a batch into plain units and runs of items of one batch function."""
    groups: list[list[_Unit]] = []
    for unit in batch:
        last = groups[-1][0] if groups else None
        if (
            unit.batch_work is not None
            and last is not None
            and last.batch_work == unit.batch_work
        ):
            groups[-1].append(unit)
        else:
            groups.append([unit])
    return groups


def _run_group(conn: Connection, group: list[_Unit]) -> None:
    if len(group) > 1 and _run_in_savepoint(conn, group):
        return

    # The shared call failed, so each item runs alone and fails only for itself.
    for unit in group:
        _run_in_savepoint(conn, [unit])


def _run_alone(transaction: RootTransaction, conn: Connection, unit: _Unit) -> None:
    """Run the only unit of a batch in the batch's transaction, with no SAVEPOINT.

    No other unit shares the transaction, so rolling all of it back fails only
    this unit, and a SAVEPOINT and its RELEASE would add CPU time and nothing
    else.
    """
    try:
        results = _call(conn, [unit])
    except Exception as exc:
        transaction.rollback()
        unit.error = exc
        return
    unit.result = results[0]


def _run_in_savepoint(conn: Connection, group: list[_Unit]) -> bool:
    """Run the group in one SAVEPOINT; return whether it succeeded.

    When a single unit fails, it keeps its own exception.  When a larger group
    fails, no unit keeps an error, and ``_run_group`` runs each unit again alone.
    """
    savepoint = conn.begin_nested()
    try:
        results = _call(conn, group)
    except Exception as exc:
        savepoint.rollback()
        if len(group) == 1:
            group[0].error = exc
        return False
    savepoint.commit()
    for unit, result in zip(group, results, strict=True):
        unit.result = result
    return True


def _call(conn: Connection, group: list[_Unit]) -> Sequence[Any]:
    """Run a plain unit, or one call over the group's items; return each result."""
    work = group[0].batch_work
    if work is None:
        assert group[0].work is not None
        return [group[0].work(conn)]

    results = work(conn, [unit.item for unit in group])
    if len(results) != len(group):
        raise RuntimeError(
            f"batch function returned {len(results)} results for {len(group)} items"
        )
    return results


def _settle(batch: list[_Unit]) -> None:
    """Resolve every future of a batch, waking each event loop once."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Unit]] = {}
    for unit in batch:
        if unit.loop is None:
            if unit.error is not None:
                unit.future.set_exception(unit.error)
            else:
                unit.future.set_result(unit.result)
        else:
            by_loop.setdefault(unit.loop, []).append(unit)

    for loop, units in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_in_loop, units)
        except RuntimeError:
            # The caller's event loop has closed, so no caller awaits these futures.
            log.warning("group commit result dropped: event loop closed")


def _settle_in_loop(units: list[_Unit]) -> None:
    for unit in units:
        if unit.future.done():
            continue
        if unit.error is not None:
            unit.future.set_exception(unit.error)
        else:
            unit.future.set_result(unit.result)
