from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from tests.conftest import TEST_KEK

from agentiam.api.app import JSONFormatter
from agentiam.cli.serve import ListenError, bind_listener, freeze_startup_heap

# An address from TEST-NET-1 (RFC 5737), which no interface of the test machine has.
FOREIGN_ADDRESS = "192.0.2.1"


def _serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``agentiam serve`` that is expected to stop at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIAM_")}
    env["AGENTIAM_KEK"] = TEST_KEK
    command = [sys.executable, "-m", "agentiam.cli.main", "serve"]
    command += ["--data-dir", str(data_dir), *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_live_server_serves_discovery(live_server):
    metadata = httpx.get(f"{live_server}/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == live_server

    jwks = httpx.get(f"{live_server}/jwks").json()
    assert len(jwks["keys"]) == 1


def test_live_server_openapi(live_server):
    document = httpx.get(f"{live_server}/v1/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/openapi.json" in document["paths"]


def test_live_server_unknown_grant(live_server):
    response = httpx.post(f"{live_server}/token", data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_live_server_not_found(live_server):
    response = httpx.get(f"{live_server}/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_freeze_startup_heap_freezes_objects():
    gc.unfreeze()
    try:
        freeze_startup_heap()

        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_serve_rejects_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = _serve(tmp_path / "data", "--port", str(port))

    assert result.returncode == 1
    assert result.stderr.endswith(
        f"agentiam: error: cannot listen on 127.0.0.1:{port}: "
        "the address is already in use\n"
    )
    assert not (tmp_path / "data").exists()


def test_serve_rejects_port_above_16_bits(tmp_path: Path) -> None:
    result = _serve(tmp_path / "data", "--port", "99999")

    assert result.returncode == 1
    assert "invalid value 99999 for setting 'port'" in result.stderr
    assert "expected an integer from 1 to 65535" in result.stderr
    assert not (tmp_path / "data").exists()


def test_bind_listener_rejects_foreign_address() -> None:
    with pytest.raises(ListenError) as info:
        bind_listener(FOREIGN_ADDRESS, 8800)

    assert str(info.value) == (
        f"cannot listen on {FOREIGN_ADDRESS}:8800: "
        "the address is not one of this machine's"
    )


def test_bind_listener_binds_loopback() -> None:
    sock = bind_listener("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    finally:
        sock.close()


def test_json_log_line_has_no_color_message() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0, "Started", None, None
    )
    record.color_message = "Started \x1b[36m1\x1b[0m"

    line = json.loads(JSONFormatter().format(record))

    assert "color_message" not in line
    assert line["event"] == "Started"
