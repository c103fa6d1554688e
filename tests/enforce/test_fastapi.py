"""EnforcementMiddleware in front of a FastAPI app."""

from __future__ import annotations

from decimal import Decimal

import pytest
from enforce_fakes import World
from fastapi import FastAPI, Request

from agentiam.enforce import authorize_detail

pytestmark = pytest.mark.anyio


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.post("/refunds", status_code=201)
    async def create_refund(request: Request) -> dict[str, str]:
        body = await request.json()
        authorize_detail(
            request,
            type="refund",
            action="create",
            amount=Decimal(body["amount"]),
            currency=body["currency"],
        )
        return {"refunded": body["amount"]}

    @app.get("/tickets/{ticket_id}")
    async def get_ticket(ticket_id: str, request: Request) -> dict[str, str]:
        return {"human": request.scope["agentiam.principal"].human}

    return app


@pytest.fixture
async def fastapi_world():
    world = World(fastapi_app())
    yield world
    await world.close()


async def test_fastapi_allows_valid_token(fastapi_world: World) -> None:
    response = await fastapi_world.call("GET", "/tickets/T-1", fastapi_world.token())
    assert response.status_code == 200
    assert response.json() == {"human": "alice"}


async def test_fastapi_detail_limit(fastapi_world: World) -> None:
    token = fastapi_world.token()
    allowed = await fastapi_world.call(
        "POST", "/refunds", token, json={"amount": "80.00", "currency": "EUR"}
    )
    denied = await fastapi_world.call(
        "POST", "/refunds", token, json={"amount": "120.00", "currency": "EUR"}
    )
    assert allowed.status_code == 201
    assert denied.status_code == 403
    assert "exceeds the 'refund' limit" in denied.json()["error_description"]
