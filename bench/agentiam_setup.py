"""Set up a fresh agentiam server for the token exchange and middleware benchmarks.

The set-up follows the contracts in docs/internals.md. The CLI creates the admin,
the human, two agent classes (an orchestrator that may spawn a worker), a join
token and a resource-server client on a fresh data directory. ``agentiam serve``
then runs on a free loopback port. The SDK attests the orchestrator, a scripted
human approves its CIBA request through the API, and the orchestrator spawns the
worker. The parent's
access token and the worker's JWT-SVID are the inputs of every measured exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPO_DIR, free_port, running
from peer_check import verify_es256_jwt

logger = logging.getLogger("bench.agentiam_setup")

HUMAN = "bench-human"
HUMAN_PASSWORD = "bench human password"  # noqa: S105 (benchmark-only account)
ADMIN = "bench-admin"
ORCHESTRATOR = "bench-orchestrator"
WORKER = "bench-worker"
AUDIENCE = "https://api.bench.example"
RESOURCE_CLIENT = "bench-api"
PARENT_SCOPE = "tickets refunds"
WORKER_SCOPE = "refunds"
PARENT_LIMIT = {"amount": "100.00", "currency": "EUR"}
WORKER_LIMIT = {"amount": "50.00", "currency": "EUR"}


@dataclass
class Deployment:
    """A running agentiam server and what the CLI created on its data directory."""

    data_dir: Path
    issuer: str
    env: dict[str, str]
    client_id: str
    client_secret: str
    # The server's process id, for its CPU time, or None when it is not known.
    pid: int | None = None


def cli(args: list[str], env: dict[str, str]) -> Any:
    """Run ``agentiam --output json ARGS`` on the deployment's data directory."""
    command = [sys.executable, "-m", "agentiam.cli.main", "--output", "json", *args]
    result = subprocess.run(  # noqa: S603 (our own CLI)
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        # The last line of standard error is the error itself, also for a traceback.
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(
            f"agentiam {' '.join(args)} failed with exit code {result.returncode}: "
            f"{lines[-1]}"
        )
    return json.loads(result.stdout) if result.stdout.strip() else None


def create_principals(env: dict[str, str], password_file: Path) -> dict[str, Any]:
    """Create the admin, the human, both agent classes and the resource server."""
    password_file.write_text(HUMAN_PASSWORD)
    password = ["--password-file", str(password_file)]
    cli(["user", "add", ADMIN, "--admin", *password], env)
    cli(["user", "add", HUMAN, *password], env)
    cli(
        [
            "agent-class", "add", ORCHESTRATOR,
            "--owner", HUMAN,
            "--scopes", *PARENT_SCOPE.split(),
            "--audiences", AUDIENCE,
            "--may-spawn", WORKER,
            "--max-depth", "2",
            "--default-ttl", "300",
            "--max-ttl", "1800",
        ],
        env,
    )  # fmt: skip
    cli(
        [
            "agent-class", "add", WORKER,
            "--owner", HUMAN,
            "--scopes", *WORKER_SCOPE.split(),
            "--audiences", AUDIENCE,
            "--max-depth", "2",
            "--default-ttl", "300",
            "--max-ttl", "900",
        ],
        env,
    )  # fmt: skip
    client: dict[str, Any] = cli(
        ["client", "add", RESOURCE_CLIENT, "--audience", AUDIENCE], env
    )
    return client


@contextlib.contextmanager
def deployed(work_dir: Path) -> Iterator[Deployment]:
    """Create the principals on a fresh data directory and run ``agentiam serve``."""
    data_dir = work_dir / "agentiam-data"
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update({"AGENTIAM_DATA_DIR": str(data_dir), "AGENTIAM_ISSUER": issuer})
    client = create_principals(env, work_dir / "password.txt")
    command = [
        sys.executable, "-m", "agentiam.cli.main", "serve",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    with running(
        command,
        ready_url=f"{issuer}/.well-known/oauth-authorization-server",
        log_path=work_dir / "agentiam-serve.log",
        cwd=REPO_DIR,
        env=env,
    ) as process:
        yield Deployment(
            data_dir=data_dir,
            issuer=issuer,
            env=env,
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            pid=process.pid,
        )


async def approve_pending(http: Any, issuer: str) -> None:
    """Log in as the human and approve the one pending CIBA request."""
    login = await http.post(
        f"{issuer}/v1/sessions", json={"login": HUMAN, "password": HUMAN_PASSWORD}
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['session_token']}"}
    for _ in range(100):
        pending = await http.get(f"{issuer}/v1/approvals", headers=headers)
        pending.raise_for_status()
        approvals = pending.json()["approvals"]
        if approvals:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("no CIBA request reached the human within 5 s")
    approved = await http.post(
        f"{issuer}/v1/approvals/{approvals[0]['id']}/approve", headers=headers
    )
    approved.raise_for_status()


async def short_sleep(seconds: float) -> None:
    """Sleep at most 50 ms, because the approval is scripted and comes at once."""
    await asyncio.sleep(min(seconds, 0.05))


def worker_exchange_arguments() -> dict[str, Any]:
    return {
        "scope": WORKER_SCOPE,
        "audience": [AUDIENCE],
        "authorization_details": [
            {"type": "refund", "actions": ["create"], "max_amount": WORKER_LIMIT}
        ],
        # Shorter than the parent token's 300 s, because a longer one is rejected.
        "lifetime": 120,
        "purpose": "Benchmark refund",
    }


async def exchange_inputs_async(deployment: Deployment) -> dict[str, Any]:
    """Build a fresh parent token and worker SVID, and capture one real exchange.

    Returns the load generator's plan (the exchange form and the worker's private
    key) and the worker's exchanged token for the middleware benchmark.
    """
    import httpx
    from cryptography.hazmat.primitives import serialization

    from agentiam.client import Agent

    join = cli(["join-token", "create", ORCHESTRATOR], deployment.env)
    captured: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        if request.url.path == "/token" and b"token-exchange" in request.content:
            captured.append(request)

    issuer = deployment.issuer
    async with httpx.AsyncClient(
        timeout=10.0, event_hooks={"request": [capture]}
    ) as http:
        orchestrator = await Agent.attest(
            issuer,
            agent_class=ORCHESTRATOR,
            join_token=join["join_token"],
            http=http,
            sleep=short_sleep,
        )
        approval = asyncio.create_task(
            orchestrator.request_approval(
                login_hint=HUMAN,
                scope=PARENT_SCOPE,
                audience=[AUDIENCE],
                authorization_details=[
                    {
                        "type": "refund",
                        "actions": ["create"],
                        "max_amount": PARENT_LIMIT,
                    }
                ],
                max_depth=2,
                expires_in=1800,
                binding_message="Benchmark grant",
            )
        )
        await approve_pending(http, issuer)
        parent_token = await approval
        worker = await orchestrator.spawn(WORKER, parent_token)
        worker_token = await worker.exchange(
            parent_token, **worker_exchange_arguments()
        )
        jwks = (await http.get(f"{issuer}/jwks")).raise_for_status().json()

    # The same independent check as for the peer's tokens: an ES256 JWS signed
    # by a key from the server's JWKS.
    header, claims = verify_es256_jwt(worker_token.access_token, jwks)

    if len(captured) != 1:
        raise RuntimeError(f"captured {len(captured)} exchange requests, expected 1")
    request = captured[0]
    key_pem = worker.key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    plan = {
        "url": str(request.url),
        "exchange": {
            "form": request.content.decode(),
            "headers": {
                "Content-Type": request.headers["content-type"],
                "Accept": "application/json",
            },
            "key_pem": key_pem,
            "kid": worker.key.kid,
            "alg": worker.key.alg,
        },
    }
    middleware = {
        "issuer": issuer,
        "audience": AUDIENCE,
        "client_id": deployment.client_id,
        "client_secret": deployment.client_secret,
        "access_token": worker_token.access_token,
        "key_pem": key_pem,
        "kid": worker.key.kid,
        "alg": worker.key.alg,
        "scope": worker_token.scope,
    }
    return {
        "token_check": {"header": header, "claims": sorted(claims)},
        "plan": plan,
        "middleware": middleware,
        "parent_scope": parent_token.scope,
        "worker_scope": worker_token.scope,
        "worker_spiffe_id": worker.spiffe_id,
        "parent_expires_at": parent_token.expires_at,
        "svid_expires_at": worker.svid_expires_at,
    }


def exchange_inputs(deployment: Deployment) -> dict[str, Any]:
    return asyncio.run(exchange_inputs_async(deployment))
