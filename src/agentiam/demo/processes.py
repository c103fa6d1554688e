"""Start and stop the demo's server processes on free loopback ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT = 30.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for an ``agentiam`` command on ``data_dir``."""
    env = dict(os.environ)
    env["AGENTIAM_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, stdin: str | None = None
) -> Any:
    """Run ``agentiam ARGS --output json`` and return its parsed output.

    Raises:
        RuntimeError: the command failed; its standard error is in the message.
    """
    command = [sys.executable, "-m", "agentiam.cli.main", "--output", "json", *args]
    result = subprocess.run(  # noqa: S603 - a fixed interpreter and our own CLI
        command,
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"agentiam {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip()}"
        )
    return json.loads(result.stdout) if result.stdout.strip() else None


def start_server(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``agentiam serve`` on 127.0.0.1:PORT and wait until it answers."""
    log = log_path.open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed interpreter and our own CLI
        [
            sys.executable,
            "-m",
            "agentiam.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=cli_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{base_url}/.well-known/oauth-authorization-server", process)
    return process


def start_support_api(
    port: int, *, issuer: str, client_id: str, client_secret: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start the support-desk API on 127.0.0.1:PORT and wait until it answers."""
    log = log_path.open("wb")
    env = dict(os.environ)
    env.update(
        {
            "SUPPORT_API_ISSUER": issuer,
            "SUPPORT_API_CLIENT_ID": client_id,
            "SUPPORT_API_CLIENT_SECRET": client_secret,
        }
    )
    process = subprocess.Popen(  # noqa: S603 - a fixed interpreter and our own module
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "agentiam.demo.support_server:create",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until_ready(f"http://127.0.0.1:{port}/tickets/T-1001", process)
    return process


def wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Poll ``url`` until it answers with any status, or fail on timeout or exit."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Process for {url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"Timed out after {READY_TIMEOUT} s waiting for {url}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started here, killing it when it does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
