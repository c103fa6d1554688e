from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.conftest import TEST_KEK, free_port

from agentiam.api.app import JSONFormatter
from agentiam.cli.serve import ListenError, bind_listener, freeze_startup_heap
from agentiam.config import load_settings

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


def test_bind_listener_takes_port_at_once() -> None:
    first = bind_listener("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]

        with pytest.raises(ListenError) as info:
            bind_listener("127.0.0.1", port)

        assert str(info.value) == (
            f"cannot listen on 127.0.0.1:{port}: the address is already in use"
        )
    finally:
        first.close()


def test_bind_listener_brackets_ipv6_in_errors() -> None:
    with pytest.raises(ListenError) as info:
        bind_listener("2001:db8::1", 8800)

    assert str(info.value).startswith("cannot listen on [2001:db8::1]:8800: ")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_serve_stops_cleanly_on_signal(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIAM_")}
    env["AGENTIAM_KEK"] = TEST_KEK
    command = [sys.executable, "-m", "agentiam.cli.main", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data")]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_jwks(port, process)
        process.send_signal(stop)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, output
    assert '"event": "server stopped"' in output
    assert "agentiam: error" not in output


def _wait_for_jwks(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "agentiam serve exited before it was ready"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/jwks", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("agentiam serve did not answer within 30 s")


@pytest.mark.parametrize(
    ("host", "issuer"),
    [("::1", "http://[::1]:8800"), ("127.0.0.1", "http://127.0.0.1:8800")],
    ids=["ipv6", "ipv4"],
)
def test_default_issuer_writes_host_as_url(host: str, issuer: str) -> None:
    settings = load_settings(environ={}, overrides={"host": host, "port": 8800})

    assert settings.issuer == issuer


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
