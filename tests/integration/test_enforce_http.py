"""EnforcementMiddleware against ``agentiam serve``: its decisions reach the log.

The protected app runs in-process; the middleware fetches the JWKS and the
revocation feed from the live server and posts its decisions there.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_exchange_http import API, Seeded, seeded

from agentiam.audit.queries import EventQuery, find_events
from agentiam.enforce import EnforcementConfig, EnforcementMiddleware, Rule
from agentiam.jose.dpop import create_dpop_proof

__all__ = ["seeded"]

# The app is served at the root of the audience's host.
ORIGIN = "https://support.example"


async def ticket(request: Request) -> JSONResponse:
    if request.path_params["id"] == "boom":
        raise RuntimeError("handler failed")
    return JSONResponse({"ticket": request.path_params["id"]})


def protected(seeded: Seeded) -> EnforcementMiddleware:
    app = Starlette(routes=[Route("/tickets/{id}", ticket, methods=["GET"])])
    config = EnforcementConfig(
        issuer=seeded.base_url,
        audience=API,
        client_id=seeded.client_id,
        client_secret=seeded.client_secret,
        rules=[Rule("GET", "/tickets/{id}", scopes=("tickets",))],
        audit_flush_interval=3600.0,
    )
    return EnforcementMiddleware(app, config=config)


async def call_tickets(
    seeded: Seeded, middleware: EnforcementMiddleware, *ids: str
) -> list[int]:
    token = seeded.root_token()
    transport = httpx.ASGITransport(app=middleware, raise_app_exceptions=False)
    statuses = []
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as api:
        for ticket_id in ids:
            path = f"/tickets/{ticket_id}"
            proof = create_dpop_proof(
                seeded.orchestrator_key,
                htm="GET",
                htu=ORIGIN + path,
                now=time.time(),
                access_token=token,
            )
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            statuses.append((await api.get(path, headers=headers)).status_code)
    return statuses


def test_enforce_http_app_error_does_not_block_decisions(seeded: Seeded) -> None:
    middleware = protected(seeded)

    async def run() -> list[int]:
        statuses = await call_tickets(seeded, middleware, "T-1", "boom", "T-2")
        # A record the audit route rejects, as a middleware of another version
        # could send, sits between good decisions and must not hold them back.
        assert middleware.decisions.reserve()
        middleware.decisions.submit(
            {"ver": 1, "id": "bad-1", "time": time.time(), "decision": "error"}
        )
        statuses += await call_tickets(seeded, middleware, "T-3")
        await middleware.aclose()
        return statuses

    assert asyncio.run(run()) == [200, 500, 200, 200]
    assert middleware.decisions.dropped == 1
    assert len(middleware.decisions) == 0

    events = find_events(seeded.ctx.engine, EventQuery(type="decision"))
    assert [
        (e.event.request["path"], e.event.decision, e.event.outcome, e.event.reason)
        for e in events
    ] == [
        ("/tickets/T-1", "allow", "granted", "rule and scopes satisfied"),
        ("/tickets/boom", "allow", "error", "application raised RuntimeError"),
        ("/tickets/T-2", "allow", "granted", "rule and scopes satisfied"),
        ("/tickets/T-3", "allow", "granted", "rule and scopes satisfied"),
    ]
    assert [e.event.request["status"] for e in events] == [200, 500, 200, 200]
