"""Agent against a fake agentiam server."""

from __future__ import annotations

import httpx
import pytest
from client_fakes import SERVER, Clock, FakeServer

from agentiam.client import (
    AccessDeniedError,
    Agent,
    DelegatedToken,
    ExpiredTokenError,
    InvalidScopeError,
)
from agentiam.jose import SigningKey, access_token_hash

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock) -> FakeServer:
    return FakeServer(clock)


@pytest.fixture
async def http(server: FakeServer):
    async with httpx.AsyncClient(transport=httpx.MockTransport(server.handle)) as c:
        yield c


async def attest(http: httpx.AsyncClient, clock: Clock, **kwargs) -> Agent:
    kwargs.setdefault("join_token", "join-1")
    return await Agent.attest(
        SERVER,
        "support-orchestrator",
        http=http,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )


async def test_attest_holds_svid(http, clock, server) -> None:
    agent = await attest(http, clock)
    path, body, headers = server.requests[0]
    assert path == "/v1/agents/attest"
    assert body == {"agent_class": "support-orchestrator", "join_token": "join-1"}
    assert "authorization" not in headers
    assert agent.spiffe_id.startswith(
        "spiffe://example.org/agent/support-orchestrator/"
    )
    assert agent.svid_expires_at == clock.now + 300


async def test_attest_needs_one_credential(http, clock) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await Agent.attest(SERVER, "a", http=http)
    with pytest.raises(ValueError, match="exactly one"):
        await Agent.attest(
            SERVER, "a", http=http, join_token="j", assertion_key=SigningKey.generate()
        )


async def test_svid_renewed_with_class_key(http, clock, server) -> None:
    agent = await attest(
        http, clock, join_token=None, assertion_key=SigningKey.generate("ES256")
    )
    first = await agent.current_svid()
    clock.now += 250
    renewed = await agent.current_svid()
    assert renewed != first
    assert [p for p, _, _ in server.requests] == ["/v1/agents/attest"] * 2
    assert "assertion" in server.requests[1][1]


async def test_join_token_svid_renewed(http, clock, server) -> None:
    agent = await attest(http, clock)
    first = await agent.current_svid()
    clock.now += 250
    renewed = await agent.current_svid()
    assert renewed != first
    assert [p for p, _, _ in server.requests] == [
        "/v1/agents/attest",
        "/v1/agents/renew",
    ]
    assert server.requests[1][2]["authorization"] == f"DPoP {first}"


async def test_request_approval_polls(http, clock, server) -> None:
    agent = await attest(http, clock)
    server.poll_answers = [
        "authorization_pending",
        "slow_down",
        "authorization_pending",
    ]
    token = await agent.request_approval(
        login_hint="alice",
        scope="tickets refunds",
        audience=["https://api.test"],
        binding_message="Work ticket T-1",
        max_depth=2,
        expires_in=1800,
        authorization_details=[{"type": "refund"}],
    )
    assert isinstance(token, DelegatedToken)
    assert token.scope == "tickets refunds"
    assert token.task_id == "t1"
    assert clock.sleeps == [2.0, 2.0, 7.0, 7.0]

    path, form, headers = server.requests[1]
    assert path == "/bc-authorize"
    assert form["requested_expiry"] == "1800"
    assert form["authorization_details"] == '[{"type": "refund"}]'
    assert headers["authorization"] == f"DPoP {await agent.current_svid()}"
    assert server.requests[2][1]["grant_type"] == "urn:openid:params:grant-type:ciba"


@pytest.mark.parametrize(
    ("answer", "error"),
    [("access_denied", AccessDeniedError), ("expired_token", ExpiredTokenError)],
    ids=["denied", "expired"],
)
async def test_request_approval_fails(http, clock, server, answer, error) -> None:
    agent = await attest(http, clock)
    server.poll_answers = ["authorization_pending", answer]
    with pytest.raises(error) as caught:
        await agent.request_approval(
            login_hint="alice",
            scope="tickets",
            audience=["https://api.test"],
            binding_message="T-1",
        )
    assert caught.value.error == answer
    assert caught.value.status == 400


async def test_exchange_sends_actor_token(http, clock, server) -> None:
    agent = await attest(http, clock)
    parent = await agent.request_approval(
        login_hint="alice",
        scope="tickets refunds",
        audience=["https://api.test"],
        binding_message="T-1",
    )
    child = await agent.spawn("refund-worker", parent)
    token = await child.exchange(
        parent, scope="refunds", lifetime=120, purpose="Refund T-1", task_id="t1"
    )

    path, form, headers = server.requests[-1]
    assert path == "/token"
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert form["subject_token"] == parent.access_token
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert form["actor_token"] == await child.current_svid()
    assert form["actor_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert form["requested_expiry"] == "120"
    assert form["purpose"] == "Refund T-1"
    assert form["task_id"] == "t1"
    assert "authorization" not in headers
    assert token.scope == "refunds"
    assert token.unverified_claims["cnf"]["jkt"] == child.key.thumbprint()


API_2 = "https://api2.test"


async def test_request_approval_repeats_audience(http, clock, server) -> None:
    agent = await attest(http, clock)
    await agent.request_approval(
        login_hint="alice",
        scope="tickets",
        audience=["https://api.test", API_2],
        binding_message="T-1",
    )

    path, pairs = server.form_pairs[0]
    assert path == "/bc-authorize"
    assert [value for name, value in pairs if name == "audience"] == [
        "https://api.test",
        API_2,
    ]


async def test_exchange_repeats_audience(http, clock, server) -> None:
    agent = await attest(http, clock)
    parent = await agent.request_approval(
        login_hint="alice",
        scope="tickets",
        audience=["https://api.test"],
        binding_message="T-1",
    )
    child = await agent.spawn("refund-worker", parent)
    await child.exchange(parent, audience=["https://api.test", API_2])

    path, pairs = server.form_pairs[-1]
    assert path == "/token"
    assert [value for name, value in pairs if name == "audience"] == [
        "https://api.test",
        API_2,
    ]


async def test_spawn_binds_child_key(http, clock, server) -> None:
    agent = await attest(http, clock)
    parent = await agent.request_approval(
        login_hint="alice",
        scope="tickets",
        audience=["https://api.test"],
        binding_message="T-1",
    )
    child = await agent.spawn("refund-worker", parent)

    path, body, headers = server.requests[-1]
    assert path == "/v1/agents/spawn"
    assert body["public_jwk"] == child.key.public_jwk()
    assert set(body) == {"agent_class", "public_jwk"}
    assert headers["authorization"] == f"DPoP {parent.access_token}"
    assert child.key.thumbprint() != agent.key.thumbprint()
    assert child.spiffe_id.startswith("spiffe://example.org/agent/refund-worker/")


async def test_exchange_error_mapped(http, clock, server) -> None:
    agent = await attest(http, clock)
    server.exchange_error = "invalid_scope"
    with pytest.raises(InvalidScopeError) as caught:
        await agent.exchange("subject", scope="admin")
    assert caught.value.error == "invalid_scope"
    assert caught.value.description == "The requested scope is not allowed."


async def test_close_task(http, clock, server) -> None:
    agent = await attest(http, clock)
    assert await agent.close_task("t1", "tok") == {"revoked": ["t1"]}
    assert server.requests[-1][0] == "/v1/tasks/t1/close"


async def test_auth_signs_each_request(http, clock) -> None:
    agent = await attest(http, clock)
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    auth = agent.auth("the-token")
    async with httpx.AsyncClient(transport=httpx.MockTransport(api), auth=auth) as c:
        await c.get("https://api.test/tickets/T-1?x=1")
        await c.get("https://api.test/tickets/T-1?x=1")

    assert [r.headers["authorization"] for r in seen] == ["DPoP the-token"] * 2
    proofs = [r.headers["dpop"] for r in seen]
    assert proofs[0] != proofs[1]
    from agentiam.jose import ReplayCache, verify_dpop_proof

    verified = verify_dpop_proof(
        proofs[0],
        htm="GET",
        htu="https://api.test/tickets/T-1",
        now=clock.now,
        access_token="the-token",
        replay=ReplayCache(10),
    )
    assert verified.ath == access_token_hash("the-token")
    assert verified.jkt == agent.key.thumbprint()
