"""``agentiam audit export --format ocsf`` and ``agentiam audit sink run``."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agentiam.api.context import close_context, open_context
from agentiam.audit.events import AuditEvent
from agentiam.cli.main import main
from agentiam.config import load_settings

WORKER = "spiffe://agentiam.local/agent/refund-worker/i-2"


@pytest.fixture
def data_dir(tmp_path: Path, cli_environment: None) -> Path:
    """A data dir with a grant approval, a token exchange and a denied decision."""
    directory = tmp_path / "data"
    ctx = open_context(load_settings(environ={}, overrides={"data_dir": directory}))
    events = [
        AuditEvent("grant.approved", "allow", "approved", human="alice",
                   grant_id="g-1", actors=[WORKER]),
        AuditEvent("token.exchanged", "allow", "issued", human="alice",
                   grant_id="g-1", actors=[WORKER], task_path=["t-root"]),
        AuditEvent("decision", "deny", "refused", human="alice", actors=[WORKER],
                   request={"method": "POST", "path": "/refunds", "status": 403}),
    ]  # fmt: skip

    async def run() -> None:
        for event in events:
            await ctx.audit.record(event)

    try:
        asyncio.run(run())
    finally:
        close_context(ctx)
    return directory


def test_export_ocsf_writes_one_object_per_event(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ocsf.jsonl"

    code = main(["audit", "export", str(out), "--format", "ocsf",
                 "--data-dir", str(data_dir)])  # fmt: skip

    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["class_uid"] for r in records] == [3003, 3003, 6003]
    assert [r["status_id"] for r in records] == [1, 1, 2]
    assert [r["metadata"]["sequence"] for r in records] == [0, 1, 2]


def test_export_default_is_jsonl(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"

    assert main(["audit", "export", str(out), "--data-dir", str(data_dir)]) == 0

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"kind": "header", "version": 1}
    # The export signs a tree head over the three events it writes.
    assert [line["kind"] for line in lines[1:]] == ["event"] * 3 + ["tree_head"]
    assert lines[-1]["tree_size"] == 3
    assert lines[1]["event"]["type"] == "grant.approved"


class _Collector(BaseHTTPRequestHandler):
    batches: ClassVar[list[Any]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).batches.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, type[_Collector]]]:
    handler = type("Collector", (_Collector,), {"batches": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ingest", handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_sink_run_once_delivers_and_stores_cursor(
    data_dir: Path,
    collector: tuple[str, type[_Collector]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, handler = collector
    monkeypatch.setenv("AGENTIAM_AUDIT_SINK_URL", url)
    args = ["audit", "sink", "run", "--once", "--data-dir", str(data_dir),
            "--output", "json"]  # fmt: skip

    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"sink": "default", "events": 3}
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"sink": "default", "events": 0}

    seqs = [item["metadata"]["sequence"] for batch in handler.batches for item in batch]
    assert seqs == [0, 1, 2]


def test_sink_run_once_fails_after_max_attempts(
    data_dir: Path,
    collector: tuple[str, type[_Collector]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, handler = collector
    handler.status = 400
    monkeypatch.setenv("AGENTIAM_AUDIT_SINK_URL", url)

    code = main(["audit", "sink", "run", "--once", "--max-attempts", "1",
                 "--data-dir", str(data_dir)])  # fmt: skip

    assert code == 1
    assert "failed to deliver events 0 to 2 in 1 attempts" in capsys.readouterr().err
    assert len(handler.batches) == 1


def test_sink_run_requires_url(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENTIAM_AUDIT_SINK_URL", raising=False)

    assert main(["audit", "sink", "run", "--once", "--data-dir", str(data_dir)]) == 1
    assert "audit_sink_url is not set" in capsys.readouterr().err
