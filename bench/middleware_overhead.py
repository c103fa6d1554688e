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
because the middleware rejects a replayed proof. Each run also times the parts of
the overhead on the same proofs: the bare signature verification with
``cryptography`` (the floor of any proof check), and ``verify_dpop_proof`` alone.
The same two are timed for Ed25519 proofs from a fresh key, because the middleware
accepts EdDSA proofs too. Then the proof check and the overhead are timed again
with the signature verification replaced by one that accepts, which leaves
everything else the middleware does per request. A last pass times each signature
verification inside the requests themselves, which splits the overhead directly.
The work other than the signature costs more there than with the signature
skipped, probably because each verification evicts the Python code's data and
branch history from the processor's caches. Every figure is given twice: in
wall-clock time, and in CPU time of the benchmark's thread, which a busy machine
inflates less because time spent waiting for a core is not counted. The input file
is JSON with ``issuer``, ``audience``, ``client_id``, ``client_secret``,
``access_token``, ``key_pem``, ``kid``, ``alg`` and ``scope``. The result is one JSON
object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
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


class Timer:
    """Wall-clock and thread CPU time of a block, in microseconds per item."""

    def __init__(self, items: int) -> None:
        self.items = items
        self.wall_us = 0.0
        self.cpu_us = 0.0

    def __enter__(self) -> Timer:
        self._wall = time.perf_counter_ns()
        self._cpu = time.thread_time_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_us = (time.perf_counter_ns() - self._wall) / self.items / 1000
        self.cpu_us = (time.thread_time_ns() - self._cpu) / self.items / 1000


async def time_requests(app: ASGIApp, scopes: list[Scope]) -> tuple[Timer, int]:
    """Return the time per request and the number of responses other than 200."""
    recorder = StatusRecorder()
    failures = 0
    with Timer(len(scopes)) as timer:
        for scope in scopes:
            await app(scope, empty_body, recorder)
            if recorder.status != 200:
                failures += 1
    return timer, failures


def proofs_of(scopes: list[Scope]) -> list[str]:
    return [dict(scope["headers"])[b"dpop"].decode() for scope in scopes]


def time_proof_checks(token: str, proofs: list[str]) -> Timer:
    """Time ``verify_dpop_proof`` on each proof, with a fresh replay cache.

    This is the part of the middleware's overhead that a DPoP-bound token costs on
    every request, because each proof is new and needs its signature verified.
    """
    from agentiam.jose import ReplayCache, verify_dpop_proof

    replay = ReplayCache(len(proofs) + 1)
    now = time.time()
    with Timer(len(proofs)) as timer:
        for proof in proofs:
            verify_dpop_proof(
                proof,
                htm="GET",
                htu=PUBLIC_URL + REQUEST_PATH,
                now=now,
                access_token=token,
                replay=replay,
            )
    return timer


def time_signatures(public_key: Any, proofs: list[str]) -> Timer:
    """Time the bare signature verification of each proof with ``cryptography``.

    Nothing else is timed: the signing input and the signature are decoded (and an
    ES256 signature turned into DER) before the clock starts. This is the floor
    below which no check of these proofs can go.
    """
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    prepared = []
    for proof in proofs:
        header, payload, signature = proof.split(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        prepared.append((f"{header}.{payload}".encode(), raw))

    with Timer(len(prepared)) as timer:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            ecdsa = ec.ECDSA(hashes.SHA256())
            ders = [
                (
                    data,
                    encode_dss_signature(
                        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
                    ),
                )
                for data, raw in prepared
            ]
            # The DER encoding above is timed too, but is below 2 us of the figure.
            for data, der in ders:
                public_key.verify(der, data, ecdsa)
        else:
            for data, raw in prepared:
                public_key.verify(raw, data)
    return timer


def eddsa_proofs(token: str, count: int) -> tuple[Any, list[str]]:
    """Return a fresh Ed25519 key's public key and ``count`` proofs made with it."""
    from agentiam.jose import SigningKey, create_dpop_proof

    key = SigningKey.generate("EdDSA")
    now = time.time()
    proofs = [
        create_dpop_proof(
            key, htm="GET", htu=PUBLIC_URL + REQUEST_PATH, now=now, access_token=token
        )
        for _ in range(count)
    ]
    return key.private_key.public_key(), proofs


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

        token = inputs["access_token"]
        public_key = agent_public_key(inputs)
        figures: dict[str, list[float]] = {}
        failures = 0
        for _ in range(runs):
            proofs = proofs_of(prepare_scopes(inputs, requests))
            add(figures, "signature", time_signatures(public_key, proofs))
            add(figures, "proof_check", time_proof_checks(token, proofs))
            eddsa_public_key, eddsa = eddsa_proofs(token, requests)
            add(figures, "eddsa_signature", time_signatures(eddsa_public_key, eddsa))
            add(figures, "eddsa_proof_check", time_proof_checks(token, eddsa))

            scopes = prepare_scopes(inputs, requests)
            bare_time, _ = await time_requests(bare_app, [dict(s) for s in scopes])
            wrapped_time, failed = await time_requests(wrapped, scopes)
            add(figures, "bare", bare_time)
            add(figures, "wrapped", wrapped_time)
            failures += failed

            with signature_check_skipped():
                proofs = proofs_of(prepare_scopes(inputs, requests))
                add(figures, "unsigned_proof_check", time_proof_checks(token, proofs))
                scopes = prepare_scopes(inputs, requests)
                bare_time, _ = await time_requests(bare_app, [dict(s) for s in scopes])
                wrapped_time, failed = await time_requests(wrapped, scopes)
                add(figures, "unsigned_bare", bare_time)
                add(figures, "unsigned_wrapped", wrapped_time)
                failures += failed

            with signature_check_timed() as signature_time:
                scopes = prepare_scopes(inputs, requests)
                _, failed = await time_requests(wrapped, scopes)
                failures += failed
            add(figures, "signature_timed_in_request", signature_time)
            # The timed loop never yields to the event loop, so the middleware's
            # audit flush and revocation poll run here, between runs.
            await asyncio.sleep(1.5)
            await drain_decisions(wrapped)
    finally:
        await lifespan.stop()

    result: dict[str, Any] = {"runs": runs, "requests_per_run": requests}
    for clock in ("us", "cpu_us"):
        for name in FIGURES:
            result[f"{name}_{clock}"] = figures[f"{name}_{clock}"]
        overhead = difference(figures[f"wrapped_{clock}"], figures[f"bare_{clock}"])
        result[f"overhead_{clock}"] = overhead
        result[f"overhead_median_{clock}"] = statistics.median(overhead)
        unsigned = difference(
            figures[f"unsigned_wrapped_{clock}"], figures[f"unsigned_bare_{clock}"]
        )
        result[f"overhead_without_signature_{clock}"] = unsigned
        timed_signature = figures[f"signature_timed_in_request_{clock}"]
        # The split of the overhead: the signature verification alone and in the
        # request (the overhead minus the overhead with the signature skipped),
        # and the work other than the signature, of the proof check and in all.
        result[f"split_median_{clock}"] = {
            "signature_alone": statistics.median(figures[f"signature_{clock}"]),
            "overhead_without_signature": statistics.median(unsigned),
            "proof_check_without_signature": statistics.median(
                figures[f"unsigned_proof_check_{clock}"]
            ),
            "signature_in_request": statistics.median(difference(overhead, unsigned)),
            # Timed around each verification in the requests of the last pass.
            "signature_timed_in_request": statistics.median(timed_signature),
            "overhead_other_than_signature": statistics.median(
                difference(overhead, timed_signature)
            ),
        }
    result["non_200_responses"] = failures
    # The middleware rejects a token sent as Bearer, so every agentiam token is
    # measured DPoP-bound.
    result["dpop_bound"] = True
    result["alg"] = inputs["alg"]
    return result


FIGURES = (
    "bare",
    "wrapped",
    "proof_check",
    "signature",
    "eddsa_proof_check",
    "eddsa_signature",
    "unsigned_proof_check",
    "unsigned_bare",
    "unsigned_wrapped",
    "signature_timed_in_request",
)


@contextlib.contextmanager
def signature_check_skipped() -> Iterator[None]:
    """Make every DPoP proof signature pass, in this process, inside the block.

    Only for measuring: the overhead timed inside is the middleware's work other
    than the signature verification, every other check of the proof included.
    """
    from agentiam.jose import dpop

    def accept(alg: str, public_key: Any, signing_input: bytes, sig: bytes) -> bool:
        return True

    real = dpop.verify_signature
    dpop.verify_signature = accept
    try:
        yield
    finally:
        dpop.verify_signature = real


@contextlib.contextmanager
def signature_check_timed() -> Iterator[Timer]:
    """Time every DPoP proof signature verification, in this process, in the block.

    The Timer yielded holds the mean per verification once the block ends. Only
    for measuring: the requests inside pay a few clock reads more than others.
    """
    from agentiam.jose import dpop

    real = dpop.verify_signature
    timer = Timer(0)
    totals = [0, 0, 0]

    def timed(alg: str, public_key: Any, signing_input: bytes, sig: bytes) -> bool:
        wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
        valid = real(alg, public_key, signing_input, sig)
        totals[0] += time.perf_counter_ns() - wall
        totals[1] += time.thread_time_ns() - cpu
        totals[2] += 1
        return valid

    dpop.verify_signature = timed
    try:
        yield timer
    finally:
        dpop.verify_signature = real
        count = max(totals[2], 1)
        timer.wall_us = totals[0] / count / 1000
        timer.cpu_us = totals[1] / count / 1000


async def drain_decisions(middleware: Any, timeout: float = 120) -> None:
    """Wait until the middleware has sent its queued decisions, so none pile up."""
    deadline = time.monotonic() + timeout
    while len(middleware.decisions) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


def add(figures: dict[str, list[float]], name: str, timer: Timer) -> None:
    figures.setdefault(f"{name}_us", []).append(timer.wall_us)
    figures.setdefault(f"{name}_cpu_us", []).append(timer.cpu_us)


def difference(minuend: list[float], subtrahend: list[float]) -> list[float]:
    return [a - b for a, b in zip(minuend, subtrahend, strict=True)]


def agent_public_key(inputs: dict[str, Any]) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(inputs["key_pem"].encode(), None).public_key()


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
        help=(
            "requests per pass (default 2000). Each run sends three passes through "
            "the middleware before the audit queue drains, so keep it below 3,333 "
            "for the audit buffer of 10,000"
        ),
    )
    args = parser.parse_args(argv)
    inputs = json.loads(args.inputs.read_text())
    result = asyncio.run(measure(inputs, args.runs, args.requests))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
