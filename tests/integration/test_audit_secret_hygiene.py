"""No token, secret or private key reaches the audit log, its exports or the logs.

The test runs the demo's whole flow against real server processes, collects every
secret the run handled, and scans the audit tables, the raw SQLite file and WAL,
``agentiam audit export`` in both formats, and both servers' log output.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from agentiam.audit.events import is_sensitive_key
from agentiam.client import Agent, DelegatedToken
from agentiam.demo import pipeline, processes
from agentiam.demo.support_api import AUDIENCE, REVOCATION_POLL_INTERVAL
from agentiam.jose import SigningKey, create_dpop_proof
from agentiam.keys.kek import decode_kek
from agentiam.keys.ring import KeyRing
from agentiam.storage.engine import create_engine

# Response members whose values are secrets, besides the ones is_sensitive_key names.
_SECRET_MEMBERS = frozenset({"svid", "auth_req_id", "join_token"})
_AUDIT_TABLES = (
    "audit_events",
    "audit_event_tasks",
    "audit_event_actors",
    "audit_tree_heads",
    "audit_decision_ids",
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unverified_payload(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    )


class Secrets:
    """Every secret the run handled, by kind, and the identifiers to pseudonymize."""

    def __init__(self) -> None:
        self.values: dict[str, set[str]] = {}
        self.raw_bytes: dict[str, set[bytes]] = {}
        self.identifiers: dict[str, set[str]] = {}

    def add(self, kind: str, value: str) -> None:
        if value:
            self.values.setdefault(kind, set()).add(value)

    def add_bytes(self, kind: str, value: bytes) -> None:
        self.raw_bytes.setdefault(kind, set()).add(value)
        self.add(kind, _b64url(value))

    def add_identifier(self, kind: str, value: str) -> None:
        self.identifiers.setdefault(kind, set()).add(value)

    def forms(self, *, with_hashes: bool) -> Iterator[tuple[str, bytes]]:
        """Yield ``(what, needle)`` for each secret and each encoding of it."""
        for kind, values in self.values.items():
            for value in values:
                raw = value.encode("utf-8")
                yield f"{kind} (raw)", raw
                yield f"{kind} (base64url)", _b64url(raw).encode("ascii")
                if with_hashes:
                    digest = hashlib.sha256(raw).digest()
                    yield f"{kind} (SHA-256 hex)", digest.hex().encode("ascii")
                    yield f"{kind} (SHA-256 base64url)", _b64url(digest).encode()
        for kind, blobs in self.raw_bytes.items():
            for blob in blobs:
                yield f"{kind} (bytes)", blob
                yield f"{kind} (hex)", blob.hex().encode("ascii")

    def identifier_forms(self) -> Iterator[tuple[str, bytes]]:
        for kind, values in self.identifiers.items():
            for value in values:
                yield f"{kind} (raw identifier)", value.encode("utf-8")


def _collect_json(found: Secrets, value: Any, key: str = "") -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            _collect_json(found, item, name)
    elif isinstance(value, list):
        for item in value:
            _collect_json(found, item, key)
    elif isinstance(value, str) and (is_sensitive_key(key) or key in _SECRET_MEMBERS):
        found.add(key, value)


def _hooks(found: Secrets) -> dict[str, list[Any]]:
    """Return httpx event hooks that collect each credential sent or received."""

    async def on_request(request: httpx.Request) -> None:
        authorization = request.headers.get("authorization")
        if authorization:
            found.add("authorization header token", authorization.split(" ", 1)[-1])
        proof = request.headers.get("dpop")
        if proof:
            found.add("DPoP proof", proof)
            found.add_identifier("dpop_jti", str(_unverified_payload(proof)["jti"]))
        content_type = request.headers.get("content-type", "")
        if "x-www-form-urlencoded" in content_type:
            for name, value in httpx.QueryParams(request.content.decode()).items():
                if is_sensitive_key(name) or name in _SECRET_MEMBERS:
                    found.add(f"form {name}", value)

    async def on_response(response: httpx.Response) -> None:
        await response.aread()
        if "json" in response.headers.get("content-type", ""):
            _collect_json(found, response.json())

    return {"request": [on_request], "response": [on_response]}


def _private_d(key: SigningKey) -> bytes:
    private = key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        size = (private.curve.key_size + 7) // 8
        return private.private_numbers().private_value.to_bytes(size, "big")
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raise AssertionError(f"Unexpected key type {type(private).__name__!r}.")


async def _call(
    agent: Agent,
    token: DelegatedToken,
    found: Secrets,
    method: str,
    url: str,
    **kwargs: Any,
) -> httpx.Response:
    async with httpx.AsyncClient(
        auth=agent.auth(token), timeout=10.0, event_hooks=_hooks(found)
    ) as api:
        return await api.request(method, url, **kwargs)


async def _run_flow(deployment: pipeline.Deployment, found: Secrets) -> None:
    issuer, api_url = deployment.issuer, deployment.api_url
    async with httpx.AsyncClient(timeout=10.0, event_hooks=_hooks(found)) as http:
        orchestrator = await Agent.attest(
            issuer,
            agent_class=pipeline.ORCHESTRATOR,
            join_token=deployment.join_token,
            http=http,
        )
        approval = asyncio.create_task(
            orchestrator.request_approval(
                login_hint=pipeline.HUMAN,
                scope="tickets crm refunds",
                audience=[AUDIENCE],
                authorization_details=[
                    {
                        "type": "refund",
                        "actions": ["create"],
                        "max_amount": pipeline.REFUND_LIMIT,
                    }
                ],
                max_depth=2,
                expires_in=1800,
                binding_message="Work ticket T-1001",
            )
        )
        await pipeline.approve_as_human(http, issuer)
        token = await approval

        ticket = await _call(
            orchestrator, token, found, "GET", f"{api_url}/tickets/T-1001"
        )
        assert ticket.status_code == 200

        worker = await orchestrator.spawn(pipeline.WORKER, token)
        worker_token = await worker.exchange(
            token,
            scope="refunds",
            audience=[AUDIENCE],
            authorization_details=[
                {
                    "type": "refund",
                    "actions": ["create"],
                    "max_amount": pipeline.WORKER_LIMIT,
                }
            ],
            lifetime=120,
            purpose="Refund the double charge",
        )
        refund = {"ticket": "T-1001", "currency": "EUR"}
        small = await _call(
            worker, worker_token, found, "POST", f"{api_url}/refunds",
            json={**refund, "amount": "30.00"},
        )  # fmt: skip
        assert small.status_code == 201
        large = await _call(
            worker, worker_token, found, "POST", f"{api_url}/refunds",
            json={**refund, "amount": "80.00"},
        )  # fmt: skip
        assert large.status_code == 403

        # The holder revokes the worker's token with a DPoP proof of its key.
        proof = create_dpop_proof(
            worker.key,
            htm="POST",
            htu=f"{issuer}/revoke",
            now=time.time(),
            access_token=worker_token.access_token,
        )
        revoked = await http.post(
            f"{issuer}/revoke",
            data={"token": worker_token.access_token},
            headers={"DPoP": proof},
        )
        assert revoked.status_code == 200

        assert token.task_id is not None
        await orchestrator.close_task(token.task_id, token)
        await asyncio.sleep(2 * REVOCATION_POLL_INTERVAL)
        after = await _call(
            worker, worker_token, found, "POST", f"{api_url}/refunds",
            json={**refund, "amount": "10.00"},
        )  # fmt: skip
        assert after.status_code == 401

        for agent in (orchestrator, worker):
            found.add_bytes("instance private key d", _private_d(agent.key))
        for kind, values in list(found.values.items()):
            for value in values:
                if value.count(".") == 2 and value.startswith("eyJ"):
                    claims = _unverified_payload(value)
                    if "sid" in claims:
                        found.add_identifier("sid", str(claims["sid"]))


def _audit_rows(database: Path) -> bytes:
    """Return every column of every audit table row, as bytes, one per line."""
    chunks: list[bytes] = []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        for table in _AUDIT_TABLES:
            for row in conn.execute(f"SELECT * FROM {table}"):
                for cell in row:
                    if isinstance(cell, bytes):
                        chunks.append(cell)
                    elif cell is not None:
                        chunks.append(str(cell).encode("utf-8"))
    return b"\n".join(chunks)


def _hits(haystack: bytes, needles: Iterator[tuple[str, bytes]]) -> list[str]:
    return sorted({what for what, needle in needles if needle and needle in haystack})


def _start(
    command: list[str], env: dict[str, str], log_path: Path, ready_url: str
) -> subprocess.Popen[bytes]:
    # The log file is closed here; the child keeps its own descriptor.
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    processes.wait_until_ready(ready_url, process)
    return process


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[pipeline.Deployment, str]]:
    """Set up as the demo does, then start the server and the support API."""
    data_dir = tmp_path / "data"
    env = processes.cli_env(data_dir, {"AGENTIAM_PASSWORD": pipeline.HUMAN_PASSWORD})
    env = {key: value for key, value in env.items() if key != "AGENTIAM_KEK"}
    server_port, api_port = processes.free_port(), processes.free_port()
    issuer = f"http://127.0.0.1:{server_port}"
    env["AGENTIAM_ISSUER"] = issuer

    processes.run_cli(["user", "add", pipeline.HUMAN], env)
    for name, scopes, spawn in (
        (pipeline.ORCHESTRATOR, ["tickets", "crm", "refunds"], [pipeline.WORKER]),
        (pipeline.WORKER, ["refunds"], []),
    ):
        spawn_args = ["--may-spawn", *spawn] if spawn else []
        processes.run_cli(
            ["agent-class", "add", name, "--owner", pipeline.HUMAN,
             "--scopes", *scopes, "--audiences", AUDIENCE, *spawn_args,
             "--max-depth", "2", "--default-ttl", "300", "--max-ttl", "1800"],
            env,
        )  # fmt: skip
    join = processes.run_cli(["join-token", "create", pipeline.ORCHESTRATOR], env)
    client = processes.run_cli(
        ["client", "add", "support-api", "--audience", AUDIENCE], env
    )

    started: list[subprocess.Popen[bytes]] = []
    deployment = pipeline.Deployment(
        data_dir=data_dir,
        issuer=issuer,
        api_url=f"http://127.0.0.1:{api_port}",
        join_token=join["join_token"],
        processes=started,
    )
    try:
        started.append(
            _start(
                ["agentiam.cli.main", "serve", "--host", "127.0.0.1",
                 "--port", str(server_port)],
                env,
                tmp_path / "server.log",
                f"{issuer}/.well-known/oauth-authorization-server",
            )
        )  # fmt: skip
        api_env = dict(env)
        api_env.update(
            SUPPORT_API_ISSUER=issuer,
            SUPPORT_API_CLIENT_ID=client["client_id"],
            SUPPORT_API_CLIENT_SECRET=client["client_secret"],
        )
        started.insert(
            0,
            _start(
                ["uvicorn", "--factory", "agentiam.demo.support_server:create",
                 "--host", "127.0.0.1", "--port", str(api_port)],
                api_env,
                tmp_path / "support-api.log",
                f"{deployment.api_url}/tickets/T-1001",
            ),
        )  # fmt: skip
        yield deployment, str(client["client_secret"])
    finally:
        for process in started:
            processes.stop(process)


# SQLite only: the scan reads the raw database file and its WAL, and a PostgreSQL
# server keeps its data files where a test cannot read them.
def test_audit_secret_hygiene(
    deployment: tuple[pipeline.Deployment, str], tmp_path: Path
) -> None:
    running, client_secret = deployment
    found = Secrets()
    found.add("join token", running.join_token)
    found.add("human password", pipeline.HUMAN_PASSWORD)
    asyncio.run(_run_flow(running, found))

    data_dir = running.data_dir
    database = next(data_dir.glob("*.db"))
    wal_before_stop = Path(f"{database}-wal")
    wal_bytes = wal_before_stop.read_bytes() if wal_before_stop.exists() else b""
    for process in running.processes:
        processes.stop(process)

    kek = decode_kek((data_dir / "kek").read_text(), source="test")
    found.add_bytes("KEK", kek)
    engine = create_engine(f"sqlite:///{database}")
    try:
        ring = KeyRing(engine, kek=kek)
        found.add_bytes("server signing key d", _private_d(ring.active()))
    finally:
        engine.dispose()
    found.add("client secret", client_secret)
    collected = set(found.values)
    for kind in ("svid", "access_token", "session_token", "auth_req_id", "DPoP proof"):
        assert kind in collected, f"the run handled no {kind}"
    assert found.identifiers.get("dpop_jti")
    assert found.identifiers.get("sid")

    env = processes.cli_env(data_dir)
    places: dict[str, bytes] = {"audit tables": _audit_rows(database)}
    for export_format in ("jsonl", "ocsf"):
        out = tmp_path / f"export.{export_format}"
        processes.run_cli(["audit", "export", "--format", export_format, str(out)], env)
        places[f"audit export --format {export_format}"] = out.read_bytes()
    places["server log"] = (tmp_path / "server.log").read_bytes()
    places["support API log"] = (tmp_path / "support-api.log").read_bytes()

    failures: list[str] = []
    for where, content in places.items():
        needles = [*found.forms(with_hashes=True), *found.identifier_forms()]
        for what in _hits(content, iter(needles)):
            failures.append(f"{what} found in {where}")
    # The raw file also holds the stored hashes that look rows up, so only the raw
    # secrets and their encodings are searched there.
    for where, content in (
        ("SQLite file", database.read_bytes()),
        ("SQLite WAL", wal_bytes),
    ):
        for what in _hits(content, found.forms(with_hashes=False)):
            failures.append(f"{what} found in {where}")
    assert failures == []

    # The scan can see a hash: the join token's hex SHA-256 is its stored row key.
    stored_hash = hashlib.sha256(running.join_token.encode()).hexdigest()
    assert stored_hash.encode() in database.read_bytes() + wal_bytes

    jsonl = places["audit export --format jsonl"].decode()
    sessions = [
        json.loads(line) for line in jsonl.splitlines() if '"session.created"' in line
    ]
    assert sessions
    assert all(
        str(session["event"]["details"]["sid"]).startswith("h1:")
        for session in sessions
    )
