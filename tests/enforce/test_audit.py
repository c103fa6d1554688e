"""DecisionSink against an audit route that rejects some batches."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from typing import Any

import httpx
import pytest

from agentiam.enforce.audit import DecisionSink, new_decision_id

pytestmark = pytest.mark.anyio


class AuditRoute:
    """Accepts a batch whole or rejects it, naming the first bad record."""

    def __init__(self, status: int = 400) -> None:
        self.status = status
        self.accepted: list[str] = []
        self.requests = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        records = json.loads(request.content)["decisions"]
        for index, record in enumerate(records):
            if record["decision"] not in ("allow", "deny"):
                description = (
                    f"'decisions[{index}].decision' must be 'allow' or 'deny'."
                )
                return httpx.Response(
                    self.status,
                    json={"error": "invalid_request", "error_description": description},
                )
        self.accepted.extend(record["id"] for record in records)
        return httpx.Response(200, json={"accepted": len(records), "duplicates": 0})


def record(number: int, decision: str = "allow") -> dict[str, Any]:
    return {"id": f"d-{number}", "decision": decision}


def sink_for(route: Any, **options: Any) -> DecisionSink:
    http = httpx.AsyncClient(transport=httpx.MockTransport(route.handle))
    settings = {"max_size": 100, "batch_size": 8, "flush_interval": 3600.0}
    settings.update(options)
    return DecisionSink(
        http, "http://issuer.test", httpx.BasicAuth("rs", "secret"), **settings
    )


def queue(sink: DecisionSink, *records: dict[str, Any]) -> None:
    for item in records:
        assert sink.reserve()
        sink.submit(item)


async def test_sink_drops_only_rejected_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = AuditRoute()
    sink = sink_for(route)
    records = [record(n) for n in range(10)]
    records[2]["decision"] = "error"
    records[7]["decision"] = "error"
    queue(sink, *records)

    with caplog.at_level(logging.ERROR, logger="agentiam.enforce.audit"):
        await sink.flush()

    assert route.accepted == [f"d-{n}" for n in range(10) if n not in (2, 7)]
    assert sink.dropped == 2
    assert len(sink) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "The audit log rejected 8 decisions with status 400: "
        "'decisions[2].decision' must be 'allow' or 'deny'."
    )
    assert sum(m.startswith("Dropped 1 audit decisions") for m in messages) == 2


async def test_sink_sends_later_decisions_after_rejection() -> None:
    route = AuditRoute()
    sink = sink_for(route, batch_size=4)
    queue(sink, record(0, "error"), record(1))
    await sink.flush()

    queue(sink, record(2), record(3))
    await sink.flush()

    assert route.accepted == ["d-1", "d-2", "d-3"]
    assert sink.dropped == 1


async def test_sink_drops_batch_on_unsplittable_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = AuditRoute(status=403)
    sink = sink_for(route)
    queue(sink, record(0), record(1, "error"), record(2))

    with caplog.at_level(logging.ERROR, logger="agentiam.enforce.audit"):
        await sink.flush()

    assert route.requests == 1
    assert route.accepted == []
    assert sink.dropped == 3
    assert caplog.records[-1].getMessage() == (
        "Dropped 3 audit decisions the audit log rejected with status 403 "
        "(3 dropped in total): 'decisions[1].decision' must be 'allow' or 'deny'."
    )


@pytest.mark.parametrize("status", [401, 408, 429, 500, 503])
async def test_sink_keeps_batch_on_transient_status(status: int) -> None:
    route = AuditRoute(status=status)
    sink = sink_for(route)
    queue(sink, record(0), record(1, "error"))

    with pytest.raises(httpx.HTTPStatusError):
        await sink.flush()

    assert route.requests == 1
    assert len(sink) == 2
    assert sink.dropped == 0


async def test_sink_keeps_settled_half_on_transient_error() -> None:
    route = AuditRoute()
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        # The whole batch is rejected, the first half accepted, then the server
        # goes down before the second half.
        if calls == 3:
            return httpx.Response(503)
        return route.handle(request)

    sink = sink_for(type("Route", (), {"handle": staticmethod(handle)}))
    queue(sink, record(0), record(1), record(2, "error"), record(3))

    with pytest.raises(httpx.HTTPStatusError):
        await sink.flush()
    assert route.accepted == ["d-0", "d-1"]
    assert len(sink) == 2

    await sink.flush()
    assert route.accepted == ["d-0", "d-1", "d-3"]
    assert sink.dropped == 1
    assert len(sink) == 0


def test_decision_ids_unique_across_draws() -> None:
    # 600 ids span three draws of 256, so the refill is exercised twice.
    ids = [new_decision_id() for _ in range(600)]
    assert len(set(ids)) == len(ids)


def test_decision_id_format() -> None:
    for decision_id in (new_decision_id() for _ in range(300)):
        assert len(decision_id) == 24
        assert re.fullmatch(r"[A-Za-z0-9_-]{24}", decision_id)
        assert len(base64.urlsafe_b64decode(decision_id)) == 18


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_decision_ids_not_shared_with_fork() -> None:
    new_decision_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, new_decision_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent_ids = {new_decision_id() for _ in range(256)}
    assert len(child_id) == 24
    assert child_id not in parent_ids
