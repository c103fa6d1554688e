"""Shared fixtures: settings on a fresh data dir, a ServerContext and a live server.

``settings``     Settings on ``tmp_path / "data"`` with a fixed test KEK.
``ctx``          a ServerContext on that data dir (SQLite, migrations run, writer
                 started), closed after the test.
``asgi_client``  a factory: ``asgi_client(app)`` returns a synchronous in-process
                 client (``get``/``post``/``request`` returning httpx responses).
``live_server``  the base URL of ``agentiam serve`` run as a subprocess on a free
                 127.0.0.1 port with a fresh data dir; ``live_server_data_dir`` is
                 that data dir.
``live_database`` parametrizes every test of ``live_server`` over SQLite in the
                 data dir and a fresh PostgreSQL schema (marked ``postgres``).
``live_server_settings`` the Settings for a test's own ``open_context`` on the
                 server's database; ``live_server_database_args`` the same database
                 as CLI flags.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.storage.conftest import postgres_schema

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.config import Settings, load_settings

# A fixed KEK so tests never write data_dir/kek: 32 bytes as unpadded base64url.
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"

SERVER_START_TIMEOUT = 30.0


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give CLI commands the test KEK and no settings from the caller's shell."""
    monkeypatch.setenv("AGENTIAM_KEK", TEST_KEK)
    for name in ("AGENTIAM_CONFIG", "AGENTIAM_DATA_DIR", "AGENTIAM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Return default settings on a fresh data dir under ``tmp_path``."""
    return load_settings(environ={}, overrides={"data_dir": tmp_path / "data"})


@pytest.fixture
def ctx(settings: Settings) -> Iterator[ServerContext]:
    """Yield a ServerContext on a fresh SQLite data dir, with migrations run."""
    context = open_context(settings, environ={"AGENTIAM_KEK": TEST_KEK})
    try:
        yield context
    finally:
        close_context(context)


@pytest.fixture
def pg_ctx(tmp_path: Path) -> Iterator[ServerContext]:
    """Yield a ServerContext on a fresh PostgreSQL schema, dropped afterwards."""
    with postgres_schema("agentiam_ctx") as url:
        settings = load_settings(
            environ={},
            overrides={"data_dir": tmp_path / "pg-data", "database_url": url},
        )
        context = open_context(settings, environ={"AGENTIAM_KEK": TEST_KEK})
        try:
            yield context
        finally:
            close_context(context)


class ASGIClient:
    """Send one request at a time to an ASGI app in-process, through httpx.

    Starlette's TestClient warns with this httpx version, and warnings are errors.
    """

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request and return the response."""

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=self.transport, base_url="http://testserver"
            ) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return self.request("POST", url, **kwargs)


@pytest.fixture
def asgi_client() -> type[ASGIClient]:
    """Return the in-process client class; call it with an ASGI app."""
    return ASGIClient


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server_data_dir(tmp_path: Path) -> Path:
    """Return the data dir the ``live_server`` fixture serves from."""
    return tmp_path / "live-data"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_database(
    request: pytest.FixtureRequest, live_server_data_dir: Path
) -> Iterator[str | None]:
    """Yield the ``live_server`` database URL, or None for SQLite in its data dir.

    For PostgreSQL the URL names a fresh schema of the test database, dropped
    after the server and every context on it have closed.  A SQLite file in the
    data dir then fails the test, because something used the default database.
    A PostgreSQL server that is down fails the test: the connection error
    propagates.
    """
    if request.param == "sqlite":
        yield None
        return

    with postgres_schema("agentiam_live") as url:
        yield url
        assert not list(live_server_data_dir.glob("*.db"))


@pytest.fixture
def live_server_database_args(
    live_server_data_dir: Path, live_database: str | None
) -> list[str]:
    """Return the CLI flags that select the ``live_server`` database."""
    args = ["--data-dir", str(live_server_data_dir)]
    if live_database is not None:
        args += ["--database-url", live_database]
    return args


@pytest.fixture
def live_server_settings(
    live_server: str, live_server_data_dir: Path, live_database: str | None
) -> Settings:
    """Return the Settings for a test's own ``open_context`` on the server's database.

    The issuer is the server's base URL, so the tokens that the test signs
    carry the server's issuer.
    """
    overrides: dict[str, Any] = {
        "data_dir": live_server_data_dir,
        "issuer": live_server,
    }
    if live_database is not None:
        overrides["database_url"] = live_database
    return load_settings(environ={}, overrides=overrides)


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Return settings for the ``live_server`` fixture as AGENTIAM_* variables."""
    return {}


@pytest.fixture
def live_server(
    live_server_database_args: list[str],
    live_server_env: dict[str, str],
    tmp_path: Path,
) -> Iterator[str]:
    """Start ``agentiam serve`` on a free port and yield its base URL."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AGENTIAM_")
    }
    env.update(live_server_env)
    env["AGENTIAM_KEK"] = TEST_KEK
    log_path = tmp_path / "live-server.log"

    command = [
        sys.executable,
        "-m",
        "agentiam.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *live_server_database_args,
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
    base_url = f"http://127.0.0.1:{port}"

    try:
        _wait_ready(process, base_url, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path
) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            pytest.fail(f"agentiam serve exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base_url}/jwks", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)

    output = log_path.read_text(errors="replace")
    pytest.fail(f"agentiam serve not ready within {SERVER_START_TIMEOUT} s:\n{output}")
