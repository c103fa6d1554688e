"""The fastest a one-process token exchange could be on this machine and stack.

Two parts, each run as its own process by bench/run.py:

* ``serve --port P``: a Starlette app under uvicorn, configured as ``agentiam
  serve`` configures it (uvloop, httptools, no access log), whose ``POST /token``
  reads the request body and responds with a fixed JSON body as long as an
  exchange response. The load generator sends it the same requests as agentiam
  (the exchange form and a fresh DPoP proof), so its CPU time per request is what
  the HTTP stack alone costs for them.
* ``crypto``: the CPU time of the two signature operations that no exchange can
  skip, measured with ``cryptography`` on a P-256 key: verifying the request's
  DPoP proof, which is new on every request, and signing the new access token.
  The subject token and the actor's SVID repeat across requests, and agentiam
  keeps them in its verified-token cache, so they are not counted.

The sum is a floor: an exchange that did nothing else (no claim checks, no task,
no audit event, no commit) would still cost that much CPU time in one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

# The length of the access token in the exchange responses of the bench, about
# 1,490 characters, so that the bare app's response is as long as agentiam's.
TOKEN_CHARS = 1_490


def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    token = "x" * TOKEN_CHARS
    body = json.dumps(
        {
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "DPoP",
            "expires_in": 120,
            "scope": "refunds",
        }
    ).encode()

    async def respond(request: Request) -> Response:
        await request.body()
        return Response(
            body,
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    return Starlette(routes=[Route("/token", respond, methods=["POST"])])


def serve(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        bare_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    uvicorn.Server(config).run()


def cpu_us_per_call(call: Any, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e6


def crypto(runs: int, calls: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    # A signing input of the size of a DPoP proof's header and payload.
    message = b"e" * 420
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))

    def verify() -> None:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    def sign() -> None:
        key.sign(message, ec.ECDSA(hashes.SHA256()))

    verify_us = [cpu_us_per_call(verify, calls) for _ in range(runs)]
    sign_us = [cpu_us_per_call(sign, calls) for _ in range(runs)]
    return {
        "es256_verify_us": statistics.median(verify_us),
        "es256_sign_us": statistics.median(sign_us),
        "runs": runs,
        "calls": calls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve", help="run the bare HTTP app")
    serving.add_argument("--port", type=int, required=True)
    timing = commands.add_parser("crypto", help="time ES256 verify and sign")
    timing.add_argument("--runs", type=int, default=5)
    timing.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)

    if args.command == "serve":
        serve(args.port)
        return 0
    print(json.dumps(crypto(args.runs, args.calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
