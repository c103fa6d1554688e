"""A sample support-desk API (tickets, CRM, refunds) protected by agentiam.

Every route has a rule in the enforcement middleware; the refund handler also checks
the amount against the token's ``refund`` authorization details.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentiam.enforce import (
    EnforcementConfig,
    EnforcementMiddleware,
    Rule,
    authorize_detail,
)

AUDIENCE = "https://support.example/api"

# Seconds between the API's polls of the revocation feed.
REVOCATION_POLL_INTERVAL = 0.5

TICKETS = {
    "T-1001": {
        "id": "T-1001",
        "customer": "C-42",
        "subject": "Charged twice for order O-77",
        "status": "open",
    },
}
CUSTOMERS = {"C-42": {"id": "C-42", "name": "Dana Reyes", "tier": "gold"}}


async def get_ticket(request: Request) -> JSONResponse:
    """Return one ticket."""
    ticket = TICKETS.get(request.path_params["ticket_id"])
    if ticket is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(ticket)


async def get_customer(request: Request) -> JSONResponse:
    """Return one CRM record."""
    customer = CUSTOMERS.get(request.path_params["customer_id"])
    if customer is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse(customer)


async def export_customers(request: Request) -> JSONResponse:
    """Return every CRM record (a bulk export)."""
    return JSONResponse({"customers": list(CUSTOMERS.values())})


async def create_refund(request: Request) -> JSONResponse:
    """Issue a refund after checking the amount against the token's limit."""
    try:
        body = await request.json()
        amount = Decimal(str(body["amount"]))
        currency = str(body["currency"])
    except (ValueError, LookupError, TypeError, InvalidOperation, RecursionError):
        # Not JSON, not an object, or no amount and currency: the request is bad.
        # A negative or NaN amount parses and is refused by authorize_detail.
        return JSONResponse(
            {
                "error": "invalid_request",
                "error_description": "A refund needs an amount and a currency.",
            },
            status_code=400,
        )

    authorize_detail(request, type="refund", amount=amount, currency=currency)

    principal = request.scope["agentiam.principal"]
    refund = {
        "ticket": body.get("ticket"),
        "amount": str(amount),
        "currency": currency,
        "issued_by": principal.client_id,
        "on_behalf_of": principal.human,
        "task": principal.task_id,
    }
    return JSONResponse(refund, status_code=201)


RULES = [
    Rule("GET", "/tickets/{ticket_id}", scopes=("tickets",)),
    Rule("GET", "/crm/customers/{customer_id}", scopes=("crm",)),
    Rule("GET", "/crm/export", scopes=("crm",)),
    Rule("POST", "/refunds", scopes=("refunds",), detail_type="refund"),
]


def create_app(
    *, issuer: str, client_id: str, client_secret: str
) -> EnforcementMiddleware:
    """Build the support-desk API wrapped in the enforcement middleware."""
    app = Starlette(
        routes=[
            Route("/tickets/{ticket_id}", get_ticket, methods=["GET"]),
            Route("/crm/customers/{customer_id}", get_customer, methods=["GET"]),
            Route("/crm/export", export_customers, methods=["GET"]),
            Route("/refunds", create_refund, methods=["POST"]),
        ]
    )
    config = EnforcementConfig(
        issuer=issuer,
        audience=AUDIENCE,
        client_id=client_id,
        client_secret=client_secret,
        rules=RULES,
        revocation_poll_interval=REVOCATION_POLL_INTERVAL,
    )
    return EnforcementMiddleware(app, config=config)
