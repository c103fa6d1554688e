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


def test_enforce_http_rejects_revoked_ancestor(seeded: Seeded) -> None:
    root = seeded.root_token()
    key, svid = seeded.worker()
    issued = seeded.exchange(root, key, svid, scope="tickets")
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    root_jti = seeded.introspect(root)["jti"]
    middleware = protected(seeded)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as api:
            proof = create_dpop_proof(
                key,
                htm="GET",
                htu=f"{ORIGIN}/tickets/T-1",
                now=time.time(),
                access_token=token,
            )
            headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
            return await api.get("/tickets/T-1", headers=headers)

    async def run() -> list[httpx.Response]:
        before = await call()
        revoked = httpx.post(
            f"{seeded.base_url}/revoke",
            data={"token": root},
            auth=(seeded.client_id, seeded.client_secret),
        )
        assert revoked.status_code == 200
        await middleware.revocations.poll()
        after = await call()
        await middleware.aclose()
        return [before, after]

    before, after = asyncio.run(run())

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json() == {
        "error": "invalid_token",
        "error_description": "The access token has been revoked.",
    }
    [*_, rejected] = find_events(seeded.ctx.engine, EventQuery(type="decision"))
    assert rejected.event.decision == "deny"
    assert rejected.event.reason == f"revoked id {root_jti}"
