"""Measure the enforcement middleware's per-request cost with a cached token.

Run as its own process by bench/run.py. It calls one bare ASGI app directly, and
the same app wrapped by ``agentiam.enforce.EnforcementMiddleware``, in the same
event loop with the same prepared scopes, and reports microseconds per request for
each. The difference is the middleware's overhead.

The token is a real DPoP-bound delegated token from the benchmark's agentiam server.
A few warm-up requests before the timed loops fetch the JWKS and put the token in the
middleware's token cache. The timed requests then pay for the cache lookup, the
revocation check, the rule match, the DPoP proof check (one ES256 signature
verification) and queueing the audit decision. They do not pay for the token's own
signature check.

Every timed request carries a DPoP proof made up front with a unique ``jti``,
because the middleware rejects a replayed proof. The input file is JSON with
``issuer``, ``audience``, ``client_id``, ``client_secret``, ``access_token``,
``key_pem``, ``kid`` and ``alg``. The result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

PUBLIC_URL = "http://127.0.0.1:8000"
REQUEST_PATH = "/items/1"
RESPONSE_BODY = b'{"ok": true}'


async def bare_app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Respond to every HTTP request with a fixed 200 JSON body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": RESPONSE_BODY})


class Lifespan:
    """Drive an ASGI app's lifespan protocol, so a middleware can start its tasks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(
            self.app(scope, self.inbox.get, self.outbox.put)
        )
        await self.inbox.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self.outbox.get(), 10)
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

    async def stop(self) -> None:
        if self.task is None:
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.outbox.get(), 10)
        await self.task


def http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": REQUEST_PATH,
        "raw_path": REQUEST_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class StatusRecorder:
    """An ASGI send callable that keeps the last response status."""

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


def prepare_scopes(inputs: dict[str, Any], count: int) -> list[Scope]:
    """Build ``count`` request scopes, each with its own DPoP proof for the token."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from agentiam.jose import SigningKey, create_dpop_proof

    key = SigningKey(
        inputs["kid"],
        inputs["alg"],
        load_pem_private_key(inputs["key_pem"].encode(), None),
    )
    token = inputs["access_token"]
    now = time.time()
    scopes = []
    for _ in range(count):
        proof = create_dpop_proof(
            key, htm="GET", htu=PUBLIC_URL + REQUEST_PATH, now=now, access_token=token
        )
        headers = [
            (b"authorization", f"DPoP {token}".encode()),
            (b"dpop", proof.encode()),
        ]
        scopes.append(http_scope(headers))
    return scopes


async def time_requests(app: ASGIApp, scopes: list[Scope]) -> tuple[float, int]:
    """Return (microseconds per request, number of responses other than 200)."""
    recorder = StatusRecorder()
    failures = 0
    start = time.perf_counter_ns()
    for scope in scopes:
        await app(scope, empty_body, recorder)
        if recorder.status != 200:
            failures += 1
    elapsed_ns = time.perf_counter_ns() - start
    return elapsed_ns / len(scopes) / 1000, failures


def time_proof_checks(inputs: dict[str, Any], scopes: list[Scope]) -> float:
    """Return microseconds per ``verify_dpop_proof`` call on the scopes' proofs.

    This is the part of the middleware's overhead that a DPoP-bound token costs on
    every request, because each proof is new and needs its signature verified.
    """
    from agentiam.jose import ReplayCache, verify_dpop_proof

    token = inputs["access_token"]
    proofs = [dict(scope["headers"])[b"dpop"].decode() for scope in scopes]
    replay = ReplayCache(len(proofs) + 1)
    now = time.time()
    start = time.perf_counter_ns()
    for proof in proofs:
        verify_dpop_proof(
            proof,
            htm="GET",
            htu=PUBLIC_URL + REQUEST_PATH,
            now=now,
            access_token=token,
            replay=replay,
        )
    return (time.perf_counter_ns() - start) / len(proofs) / 1000


def build_middleware(inputs: dict[str, Any]) -> ASGIApp:
    from agentiam.enforce import EnforcementConfig, EnforcementMiddleware, Rule

    config = EnforcementConfig(
        issuer=inputs["issuer"],
        audience=inputs["audience"],
        client_id=inputs["client_id"],
        client_secret=inputs["client_secret"],
        rules=[Rule("GET", "/items/{item_id}", scopes=tuple(inputs["scope"].split()))],
        public_url=PUBLIC_URL,
    )
    middleware: ASGIApp = EnforcementMiddleware(bare_app, config=config)
    return middleware


async def measure(inputs: dict[str, Any], runs: int, requests: int) -> dict[str, Any]:
    wrapped = build_middleware(inputs)
    lifespan = Lifespan(wrapped)
    await lifespan.start()
    try:
        warm_up = prepare_scopes(inputs, 20)
        _, warm_up_failures = await time_requests(wrapped, warm_up)
        if warm_up_failures:
            raise RuntimeError(
                f"{warm_up_failures} of 20 warm-up requests through the middleware "
                "did not return 200; check the token, audience and rule"
            )

        bare_us: list[float] = []
        wrapped_us: list[float] = []
        proof_check_us: list[float] = []
        failures = 0
        for _ in range(runs):
            proof_check_us.append(
                time_proof_checks(inputs, prepare_scopes(inputs, requests))
            )
            scopes = prepare_scopes(inputs, requests)
            per_request, _ = await time_requests(bare_app, [dict(s) for s in scopes])
            bare_us.append(per_request)
            per_request, failed = await time_requests(wrapped, scopes)
            wrapped_us.append(per_request)
            failures += failed
            # The timed loop never yields to the event loop, so the middleware's
            # audit flush and revocation poll run here, between runs.
            await asyncio.sleep(1.5)
    finally:
        await lifespan.stop()

    overhead = [w - b for w, b in zip(wrapped_us, bare_us, strict=True)]
    return {
        "runs": runs,
        "requests_per_run": requests,
        "bare_us": bare_us,
        "wrapped_us": wrapped_us,
        "overhead_us": overhead,
        "overhead_median_us": statistics.median(overhead),
        "proof_check_us": proof_check_us,
        "non_200_responses": failures,
        # The middleware rejects a token sent as Bearer, so every agentiam token
        # is measured DPoP-bound.
        "dpop_bound": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs", type=Path, help="JSON input file (see module docstring)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument(
        "--requests",
        type=int,
        default=2000,
        help="requests per run (default 2000, below the audit buffer of 10,000)",
    )
    args = parser.parse_args(argv)
    inputs = json.loads(args.inputs.read_text())
    result = asyncio.run(measure(inputs, args.runs, args.requests))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
