"""Load generator for token endpoints, run as its own process by bench/run.py.

wrk replays one fixed request, but every token exchange needs a DPoP proof with a
unique ``jti`` (RFC 9449). This generator therefore builds every request before the
clock starts. During the run it only writes prepared bytes and parses responses, on
``--connections`` HTTP/1.1 keep-alive connections over raw asyncio streams.

Two modes:

* closed loop (default): each connection sends its next request as soon as the
  previous response has arrived, so the result is the peak rate at that concurrency;
* open loop (``--rate R``): request ``i`` is due at ``start + i / R``, and its latency
  is measured from that due time rather than from the moment it was written, so a
  stalled server is charged for the requests it delayed.

The plan file is JSON with ``url`` and one of two request sources:

* ``{"fixed": {"headers": {...}, "body": "..."}}``: the same request every time;
* ``{"exchange": {"form": "...", "headers": {...}, "key_pem": "...", "kid": "..."}}``:
  the form body of a token exchange request, sent with a fresh DPoP proof per request
  made with ``agentiam.jose.create_dpop_proof`` from the PKCS#8 PEM private key.

The result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("bench.load_exchange")

# The generator stops waiting for a response after this many seconds and counts
# the request as timed out.
RESPONSE_TIMEOUT_S = 10.0
# New connections one connection slot may open after the server closed or broke
# the previous one, so a server that closes every connection cannot spin the loop.
MAX_RECONNECTS = 1000


@dataclass
class Target:
    host: str
    port: int
    path: str
    url: str


@dataclass
class Outcome:
    latencies_ns: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    timeouts: int = 0
    first_error_body: str | None = None


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise SystemExit(f"invalid url {url!r}: expected http://127.0.0.1:PORT/path")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"invalid url {url!r}: the generator only targets loopback")
    return Target(
        host=parts.hostname,
        port=parts.port or 80,
        path=parts.path or "/",
        url=url,
    )


def encode_request(target: Target, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    for name, value in headers.items():
        if name.lower() in ("host", "content-length", "connection"):
            continue
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body


def build_fixed_requests(
    target: Target, spec: dict[str, Any], count: int
) -> list[bytes]:
    request = encode_request(target, spec["headers"], spec["body"].encode())
    return [request] * count


def build_exchange_requests(
    target: Target, spec: dict[str, Any], count: int
) -> list[bytes]:
    """Build ``count`` token exchange requests, each with its own DPoP proof.

    Every proof carries the same ``iat``, the time this function starts, so the
    oldest proof at the end of a run is (build time + run time) old, which has to
    stay inside the server's 60 s proof window.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from agentiam.jose import SigningKey, create_dpop_proof

    private_key = load_pem_private_key(spec["key_pem"].encode(), password=None)
    key = SigningKey(spec.get("kid", "bench"), spec.get("alg", "ES256"), private_key)
    body = spec["form"].encode()
    headers = dict(spec["headers"])
    now = time.time()
    requests = []
    for _ in range(count):
        headers["DPoP"] = create_dpop_proof(key, htm="POST", htu=target.url, now=now)
        requests.append(encode_request(target, headers, body))
    return requests


@dataclass
class Response:
    status: int
    body: bytes
    # True when the server sent "Connection: close" and the next request needs a
    # new connection.
    closing: bool


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    closing = False
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif lowered == b"connection" and b"close" in value.lower():
            closing = True
    if not chunked:
        return Response(status, await reader.readexactly(length), closing)
    chunks = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return Response(status, b"".join(chunks), closing)
        chunks.append(chunk[:-2])


class Generator:
    def __init__(
        self,
        target: Target,
        requests: list[bytes],
        *,
        connections: int,
        duration_s: float,
        rate: float | None,
    ) -> None:
        self.target = target
        self.requests = requests
        self.connections = connections
        self.duration_s = duration_s
        self.rate = rate
        self.next_index = 0
        self.outcome = Outcome()
        self.start_ns = 0
        self.deadline_ns = 0

    def take(self) -> int | None:
        index = self.next_index
        if index >= len(self.requests):
            return None
        self.next_index = index + 1
        return index

    async def connection_loop(self) -> None:
        """Send requests on one connection, opening a new one when it breaks."""
        for _ in range(MAX_RECONNECTS + 1):
            reader, writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
            try:
                reconnect = await self.send_until_done(reader, writer)
            finally:
                writer.close()
            if not reconnect:
                return
        logger.warning("connection broke %d times, giving up on it", MAX_RECONNECTS)

    async def send_until_done(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Send requests until the run ends (False) or the connection breaks (True)."""
        outcome = self.outcome
        while True:
            index = self.take()
            if index is None:
                return False
            if self.rate is None:
                due_ns = time.perf_counter_ns()
            else:
                due_ns = self.start_ns + int(index * 1e9 / self.rate)
                delay_s = (due_ns - time.perf_counter_ns()) / 1e9
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
            if due_ns >= self.deadline_ns:
                return False
            writer.write(self.requests[index])
            try:
                response = await asyncio.wait_for(
                    read_response(reader), RESPONSE_TIMEOUT_S
                )
            except TimeoutError:
                outcome.timeouts += 1
                return True
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                outcome.transport_errors += 1
                logger.warning("request %d failed: %s", index, error)
                return True
            outcome.latencies_ns.append(time.perf_counter_ns() - due_ns)
            status = response.status
            outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
            if status != 200 and outcome.first_error_body is None:
                outcome.first_error_body = response.body[:500].decode(
                    "utf-8", "replace"
                )
            if response.closing:
                return True

    async def run(self) -> dict[str, Any]:
        self.start_ns = time.perf_counter_ns()
        self.deadline_ns = self.start_ns + int(self.duration_s * 1e9)
        tasks = [
            asyncio.create_task(self.connection_loop()) for _ in range(self.connections)
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed_s = (time.perf_counter_ns() - self.start_ns) / 1e9
        for result in results:
            if isinstance(result, BaseException):
                self.outcome.transport_errors += 1
                logger.warning("connection failed: %s", result)
        return self.summarize(elapsed_s)

    def summarize(self, elapsed_s: float) -> dict[str, Any]:
        outcome = self.outcome
        ok = outcome.statuses.get(200, 0)
        latencies = sorted(outcome.latencies_ns)
        return {
            "mode": "closed" if self.rate is None else "open",
            "connections": self.connections,
            "target_rate": self.rate,
            "duration_s": elapsed_s,
            "requests": len(latencies),
            "ok": ok,
            "ok_per_s": ok / elapsed_s if elapsed_s > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(outcome.statuses.items())},
            "transport_errors": outcome.transport_errors,
            "timeouts": outcome.timeouts,
            "prepared_requests": len(self.requests),
            "ran_out_of_requests": self.next_index >= len(self.requests),
            "latency_p50_ms": percentile_ms(latencies, 50),
            "latency_p99_ms": percentile_ms(latencies, 99),
            "latency_max_ms": latencies[-1] / 1e6 if latencies else None,
            "first_error_body": outcome.first_error_body,
        }


def percentile_ms(sorted_ns: list[int], percent: float) -> float | None:
    """Return the nearest-rank percentile of sorted nanosecond values, in ms."""
    if not sorted_ns:
        return None
    rank = max(1, round(percent / 100 * len(sorted_ns)))
    return sorted_ns[min(rank, len(sorted_ns)) - 1] / 1e6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan", type=Path, help="JSON plan file (see module docstring)")
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="keep-alive connections (default 16)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="run time in seconds (default 10)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open-loop rate in requests per second; without it the loop is closed",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        help="requests to prepare; default: duration x 6000/s closed, x rate open",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    if args.duration <= 0 or args.duration > 60:
        raise SystemExit(f"invalid --duration {args.duration}: expected 0 < s <= 60")
    plan = json.loads(args.plan.read_text())
    target = parse_target(plan["url"])

    # NOTE: 6000/s is a ceiling guessed for one process on a small machine. A closed
    # loop that exhausts its prepared requests reports ran_out_of_requests = true,
    # and then --max-requests has to be raised.
    if args.max_requests is not None:
        count = args.max_requests
    elif args.rate is not None:
        count = int(args.rate * args.duration) + 1
    else:
        count = int(6000 * args.duration)

    build_start = time.perf_counter()
    if "exchange" in plan:
        requests = build_exchange_requests(target, plan["exchange"], count)
    else:
        requests = build_fixed_requests(target, plan["fixed"], count)
    build_s = time.perf_counter() - build_start

    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run

    generator = Generator(
        target,
        requests,
        connections=args.connections,
        duration_s=args.duration,
        rate=args.rate,
    )
    result = runner(generator.run())
    result["build_s"] = build_s
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
