"""Crash safety of the audit log: SIGKILL ``agentiam serve`` under load, restart.

Every login that got a 201 must have its ``session.created`` event in the log,
the log must verify, and the tree must resume: a consistency proof from the last
head signed before the crash to a head signed after the restart verifies.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agentiam.api.context import close_context, open_context
from agentiam.audit.merkle import verify_consistency
from agentiam.audit.tables import audit_events
from agentiam.cli.main import main
from agentiam.config import load_settings
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore

# The KEK the server and the in-process contexts share (as in tests/conftest.py).
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"
ISSUER = "http://127.0.0.1:8800"
PASSWORD = "correct horse battery staple"
CLIENTS = 4
LOAD_SECONDS = 2.5
START_TIMEOUT = 30.0


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTIAM_")}
    env["AGENTIAM_KEK"] = TEST_KEK
    # Both runs listen on different ports but must sign heads as one issuer.
    env["AGENTIAM_ISSUER"] = ISSUER
    # Small values so that heads are signed during the short load.
    env["AGENTIAM_AUDIT_TREE_HEAD_EVERY"] = "5"
    env["AGENTIAM_AUDIT_TREE_HEAD_INTERVAL_MS"] = "200"
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data_dir: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "agentiam.cli.main", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, env=_environ(), stdout=log_file, stderr=log_file
        )
    base_url = f"http://127.0.0.1:{port}"

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"agentiam serve exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/jwks", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"agentiam serve not ready:\n{log_path.read_text()}")


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def _login_loop(base_url: str, stop: threading.Event, issued: list[str]) -> None:
    """Log in until ``stop`` is set or the server dies; keep each 201's jti."""
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            try:
                response = client.post(
                    f"{base_url}/v1/sessions",
                    json={"login": "alice", "password": PASSWORD},
                )
            except httpx.TransportError:
                return
            if response.status_code == 201:
                issued.append(_jti(response.json()["session_token"]))


def _load(
    base_url: str, seconds: float, kill: subprocess.Popen[bytes] | None
) -> list[str]:
    """Run ``CLIENTS`` login loops for ``seconds``, then SIGKILL ``kill`` if given."""
    issued: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_login_loop, args=(base_url, stop, issued))
        for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)

    # Killing while the clients still send puts the crash in mid-load.
    if kill is not None:
        kill.send_signal(signal.SIGKILL)
        kill.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    return issued


def _open(data_dir: Path) -> Any:
    settings = load_settings(
        environ={}, overrides={"data_dir": data_dir, "issuer": ISSUER}
    )
    return open_context(settings, environ={"AGENTIAM_KEK": TEST_KEK})


def _seed(data_dir: Path) -> None:
    ctx = _open(data_dir)
    try:
        users = UserStore(ctx.engine)
        password_hash = hash_password(PASSWORD)
        ctx.writer.run_sync(
            lambda conn: users.add_in(
                conn, login="alice", password_hash=password_hash, now=time.time()
            )
        )
    finally:
        close_context(ctx)


def _logged_jtis(ctx: Any) -> set[str]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.canonical).where(
                audit_events.c.type == "session.created"
            )
        ).all()
    return {json.loads(row.canonical)["details"]["session_jti"] for row in rows}


def test_audit_survives_sigkill(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("AGENTIAM_KEK", TEST_KEK)
    monkeypatch.setenv("AGENTIAM_ISSUER", ISSUER)
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    _seed(data_dir)

    process, base_url = _start(data_dir, log_path)
    before = _load(base_url, LOAD_SECONDS, kill=process)
    assert process.returncode == -signal.SIGKILL
    assert before, "no login succeeded before the crash"

    ctx = _open(data_dir)
    try:
        old_head = ctx.audit.latest_tree_head()
    finally:
        close_context(ctx)
    assert old_head is not None, "no tree head was signed before the crash"

    process, base_url = _start(data_dir, log_path)
    after = _load(base_url, 1.0, kill=None)
    process.terminate()
    process.wait(timeout=20)
    assert after

    ctx = _open(data_dir)
    try:
        logged = _logged_jtis(ctx)
        new_head = ctx.audit.latest_tree_head()
        assert new_head is not None
        proof = ctx.audit.consistency_proof(old_head.size, new_head.size)
    finally:
        close_context(ctx)

    assert not set(before) - logged, "events of successful logins were lost"
    assert not set(after) - logged
    assert new_head.size > old_head.size
    assert verify_consistency(
        old_head.size, new_head.size, old_head.root, new_head.root, proof
    )
    assert main(["audit", "verify", "--data-dir", str(data_dir)]) == 0
    assert "audit log verified:" in capsys.readouterr().out
