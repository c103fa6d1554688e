"""Token exchange and introspection over HTTP against ``agentiam serve``.

The test opens its own context on the server's data directory. It seeds a human,
the agent classes, a grant with its root task and a resource-server client. It signs
the root token and the SVIDs with the server's active key, as the CIBA and spawn
steps would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.audit.queries import EventQuery, find_events
from agentiam.config import Settings
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.clients import ClientStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import UserStore
from agentiam.jose import SigningKey, sign_jws
from agentiam.jose._base64url import b64url_decode, b64url_encode
from agentiam.jose.dpop import create_dpop_proof
from agentiam.jose.jws import sign_bytes, sign_jws_with_header
from agentiam.tasks import Task, task_store
from agentiam.tasks.tables import tasks

# The KEK the live_server fixture starts the server with (tests/conftest.py).
TEST_KEK = "dGVzdC1rZWstMzItYnl0ZXMtbG9uZy1mb3ItYWdlbnQ"

API = "https://support.example/api"
ADMIN_PASSWORD = "root-password-1"
ORCHESTRATOR = "support-orchestrator"
WORKER = "refund-worker"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@dataclass(frozen=True)
class Written:
    """The task ids and the audit event types in the database at one moment."""

    task_ids: set[str]
    event_types: list[str]


@dataclass
class Seeded:
    """The seeded principals and a way to mint tokens the server accepts."""

    base_url: str
    ctx: ServerContext
    trust_domain: str
    user_id: str
    grant: Grant
    root_task: Task
    client_id: str
    client_secret: str
    orchestrator_key: SigningKey

    def spiffe(self, agent_class: str, instance: str) -> str:
        return f"spiffe://{self.trust_domain}/agent/{agent_class}/{instance}"

    @property
    def orchestrator(self) -> str:
        return self.spiffe(ORCHESTRATOR, "o-1")

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        return sign_jws(claims, self.ctx.keyring.active(), typ=typ)

    def login(self, login: str, password: str) -> str:
        """Log a human in at ``POST /v1/sessions`` and return the session token."""
        response = httpx.post(
            f"{self.base_url}/v1/sessions", json={"login": login, "password": password}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["session_token"])

    def admin_session(self) -> str:
        """Add the administrator ``root`` and return a session token for it."""
        password_hash = hash_password(ADMIN_PASSWORD)
        self.ctx.writer.run_sync(
            lambda conn: UserStore(self.ctx.engine).add_in(
                conn,
                login="root",
                password_hash=password_hash,
                now=self.ctx.clock(),
                admin=True,
            )
        )
        return self.login("root", ADMIN_PASSWORD)

    def root_token(self, **changes: Any) -> str:
        now = int(self.ctx.clock())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": self.base_url,
            "aud": [API],
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(12),
            "sub": self.user_id,
            "client_id": self.orchestrator,
            "scope": "refunds tickets",
            "act": {"sub": self.orchestrator},
            "depth": 1,
            "grant": {
                "id": self.grant.id,
                "receipt_hash": self.grant.receipt_hash,
            },
            "task": {"id": self.root_task.id, "path": [self.root_task.id]},
            "cnf": {"jkt": self.orchestrator_key.thumbprint()},
        }
        claims.update(changes)
        return self.sign(claims, "at+jwt")

    def svid(
        self, spiffe_id: str, key: SigningKey, *, ancestors: list[str] | None = None
    ) -> str:
        """Sign a JWT-SVID for ``spiffe_id`` bound to ``key``.

        With ``ancestors`` the instance is a sub-agent whose parent is the last one.
        """
        now = int(self.ctx.clock())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": self.base_url,
            "aud": [self.base_url],
            "sub": spiffe_id,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "cnf": {"jkt": key.thumbprint()},
        }
        if ancestors is not None:
            claims["parent"] = ancestors[-1]
            claims["ancestors"] = ancestors
        return self.sign(claims, "JWT")

    def worker(
        self, agent_class: str = WORKER, *, ancestors: list[str] | None = None
    ) -> tuple[SigningKey, str]:
        """Return a key and an SVID of a sub-agent of the orchestrator."""
        key = SigningKey.generate("ES256")
        spiffe_id = self.spiffe(agent_class, secrets.token_hex(4))
        svid = self.svid(spiffe_id, key, ancestors=ancestors or [self.orchestrator])
        return key, svid

    def orchestrator_svid(self) -> str:
        return self.svid(self.orchestrator, self.orchestrator_key)

    def task_ids(self) -> set[str]:
        with self.ctx.engine.connect() as conn:
            return set(conn.execute(sqlalchemy.select(tasks.c.id)).scalars())

    def event_types(self) -> list[str]:
        return [e.event.type for e in find_events(self.ctx.engine, EventQuery())]

    def refusal_reason(self) -> str | None:
        [*_, last] = find_events(
            self.ctx.engine, EventQuery(type="token.exchange_refused")
        )
        return last.event.reason

    def written(self) -> Written:
        return Written(self.task_ids(), self.event_types())

    def proof(
        self,
        key: SigningKey,
        path: str,
        *,
        method: str = "POST",
        token: str | None = None,
    ) -> str:
        return create_dpop_proof(
            key,
            htm=method,
            htu=f"{self.base_url}{path}",
            now=self.ctx.clock(),
            access_token=token,
        )

    def exchange(
        self, subject: str, key: SigningKey, svid: str | None, **params: str
    ) -> httpx.Response:
        """POST a token exchange; without ``svid`` the form has no actor token."""
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE,
        }
        if svid is not None:
            form["actor_token"] = svid
            form["actor_token_type"] = JWT_TOKEN_TYPE
        form.update(params)
        return httpx.post(
            f"{self.base_url}/token",
            data=form,
            headers={"DPoP": self.proof(key, "/token")},
        )

    def introspect(self, token: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.base_url}/introspect",
            data={"token": token},
            auth=(self.client_id, self.client_secret),
        )
        assert response.status_code == 200
        return dict(response.json())


def _seed(ctx: ServerContext, base_url: str) -> Seeded:
    now = ctx.clock()
    run = ctx.writer.run_sync
    user = run(
        lambda conn: UserStore(ctx.engine).add_in(
            conn, login="alice", password_hash=hash_password("alice-pw"), now=now
        )
    )
    classes = AgentClassStore(ctx.engine)
    for name, may_spawn in ((WORKER, frozenset()), (ORCHESTRATOR, frozenset({WORKER}))):
        agent_class = AgentClass(
            name=name,
            owner=user.id,
            scopes=frozenset({"refunds", "tickets"}),
            audiences=frozenset({API}),
            may_spawn=may_spawn,
            max_depth=3,
            default_ttl=240,
            max_ttl=900,
        )
        run(lambda conn, c=agent_class: classes.add_in(conn, c, now=now))

    grant = Grant(
        id="grt_" + secrets.token_hex(8),
        user_id=user.id,
        agent_class=ORCHESTRATOR,
        scopes=("refunds", "tickets"),
        audiences=(API,),
        authorization_details=(),
        max_depth=2,
        expires_at=now + 3600,
        receipt="receipt",
        receipt_hash=secrets.token_urlsafe(32),
        created_at=now,
    )
    run(lambda conn: GrantStore(ctx.engine).insert_in(conn, grant))
    orchestrator_id = f"spiffe://{ctx.settings.trust_domain}/agent/{ORCHESTRATOR}/o-1"
    root_task = run(
        lambda conn: task_store(ctx.engine, ctx.revocations).open_in(
            conn,
            grant_id=grant.id,
            parent_id=None,
            purpose="Work ticket T-1",
            scopes=grant.scopes,
            audiences=grant.audiences,
            expires_at=grant.expires_at,
            opened_by=orchestrator_id,
            now=now,
        )
    )
    issued = run(
        lambda conn: ClientStore(ctx.engine).add_in(conn, "support-api", [API], now=now)
    )
    return Seeded(
        base_url=base_url,
        ctx=ctx,
        trust_domain=ctx.settings.trust_domain,
        user_id=user.id,
        grant=grant,
        root_task=root_task,
        client_id=issued.client.client_id,
        client_secret=issued.client_secret,
        orchestrator_key=SigningKey.generate("ES256"),
    )


@pytest.fixture
def seeded(live_server: str, live_server_settings: Settings) -> Iterator[Seeded]:
    ctx = open_context(live_server_settings, environ={"AGENTIAM_KEK": TEST_KEK})
    try:
        yield _seed(ctx, live_server)
    finally:
        close_context(ctx)


def test_exchange_http_issues_token(seeded: Seeded) -> None:
    key, svid = seeded.worker()

    response = seeded.exchange(seeded.root_token(), key, svid, scope="refunds")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "DPoP"
    assert body["scope"] == "refunds"
    assert 0 < body["expires_in"] <= 240


def test_exchange_http_token_introspects(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    token = seeded.exchange(seeded.root_token(), key, svid, scope="refunds").json()[
        "access_token"
    ]

    result = seeded.introspect(token)

    assert result["active"] is True
    assert result["scope"] == "refunds"
    assert result["act"]["act"] == {"sub": seeded.orchestrator}
    assert result["cnf"] == {"jkt": key.thumbprint()}


def test_token_http_rejects_unknown_grant_type(seeded: Seeded) -> None:
    response = httpx.post(f"{seeded.base_url}/token", data={"grant_type": "password"})

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_http_rejects_repeated_parameter(seeded: Seeded) -> None:
    response = httpx.post(
        f"{seeded.base_url}/token",
        content=f"grant_type={TOKEN_EXCHANGE}&scope=a&scope=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "'scope'" in response.json()["error_description"]


def test_introspect_http_requires_client(seeded: Seeded) -> None:
    response = httpx.post(f"{seeded.base_url}/introspect", data={"token": "x"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspect_http_invalid_token_inactive(seeded: Seeded) -> None:
    assert seeded.introspect("not-a-token") == {"active": False}


def _rejected(seeded: Seeded, response: httpx.Response, before: Written) -> dict:
    """Check what every rejected exchange shares and return the error body.

    The refusal is the one audit event written, and no task is written.
    """
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert seeded.task_ids() == before.task_ids
    assert seeded.event_types() == [*before.event_types, "token.exchange_refused"]
    return dict(response.json())


def test_exchange_http_rejects_wider_scope(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds admin")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_scope",
        "error_description": "The requested scope is not allowed. "
        "Scopes 'admin' are not in the parent.",
    }


def test_exchange_http_rejects_other_audience(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(
        root, key, svid, scope="refunds", audience="https://evil.example/api"
    )

    assert _rejected(seeded, response, before) == {
        "error": "invalid_target",
        "error_description": "The requested audience is not allowed. "
        "Audiences 'https://evil.example/api' are not in the parent token.",
    }


LONGER = re.compile(
    r"The request is invalid\. The requested_expiry of 600 seconds ends after the "
    r"parent token, which expires in 29[89] seconds\."
)


def test_exchange_http_rejects_longer_lifetime(seeded: Seeded) -> None:
    key, svid = seeded.worker()
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds", requested_expiry="600")

    body = _rejected(seeded, response, before)
    assert body["error"] == "invalid_request"
    assert LONGER.fullmatch(body["error_description"])


def test_exchange_http_rejects_depth_over_limit(seeded: Seeded) -> None:
    # A depth-2 token of the orchestrator under a parent P: its sub-agent would be
    # at depth 3, over the grant's maximum of 2.
    parent = seeded.spiffe(ORCHESTRATOR, "p-1")
    root = seeded.root_token(
        act={"sub": seeded.orchestrator, "act": {"sub": parent}}, depth=2
    )
    key, svid = seeded.worker(ancestors=[parent, seeded.orchestrator])
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. The "
        "delegation depth 3 exceeds the grant's maximum of 2.",
    }


def test_exchange_http_rejects_class_not_spawnable(seeded: Seeded) -> None:
    key, svid = seeded.worker(ORCHESTRATOR)
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "unauthorized_client",
        "error_description": "The client is not allowed to make this request. "
        f"Agent class '{ORCHESTRATOR}' may not spawn '{ORCHESTRATOR}'.",
    }


def test_exchange_http_rejects_other_key(seeded: Seeded) -> None:
    # The caller has its own key and presents another instance's SVID.
    _their_key, their_svid = seeded.worker()
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(
        root, SigningKey.generate("ES256"), their_svid, scope="refunds"
    )

    assert _rejected(seeded, response, before) == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof is invalid. The DPoP proof key does "
        "not match the actor_token's cnf.jkt.",
    }


def test_exchange_http_rejects_other_parent(seeded: Seeded) -> None:
    other_parent = seeded.spiffe(ORCHESTRATOR, "o-2")
    key, svid = seeded.worker(ancestors=[other_parent])
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "unauthorized_client",
        "error_description": "The client is not allowed to make this request. "
        "The actor is not a sub-agent of the subject token's client.",
    }


def test_exchange_http_rejects_revoked_parent(seeded: Seeded) -> None:
    root = seeded.root_token()
    jti = seeded.introspect(root)["jti"]
    revoked = httpx.post(
        f"{seeded.base_url}/revoke",
        data={"token": root},
        auth=(seeded.client_id, seeded.client_secret),
    )
    assert revoked.status_code == 200
    key, svid = seeded.worker()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The subject_token has been revoked.",
    }
    assert seeded.refusal_reason() == f"subject_token revoked by '{jti}'"


def test_exchange_http_rejects_closed_task(seeded: Seeded) -> None:
    root = seeded.root_token()
    path = f"/v1/tasks/{seeded.root_task.id}/close"
    closed = httpx.post(
        f"{seeded.base_url}{path}",
        json={},
        headers={
            "Authorization": f"DPoP {root}",
            "DPoP": seeded.proof(seeded.orchestrator_key, path, token=root),
        },
    )
    assert closed.status_code == 200
    key, svid = seeded.worker()
    before = seeded.written()

    response = seeded.exchange(root, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The subject_token has been revoked.",
    }
    assert seeded.refusal_reason() == (
        f"subject_token revoked by '{seeded.root_task.id}'"
    )


def test_exchange_http_rejects_missing_actor(seeded: Seeded) -> None:
    # Neither agent class allows impersonation.
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, seeded.orchestrator_key, None, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_request",
        "error_description": "The request is invalid. Missing actor_token: the "
        "acting instance must present its JWT-SVID.",
    }


def test_reexchange_http_rejects_dropped_act(seeded: Seeded) -> None:
    # The orchestrator presents its worker's token as its own: the new token would
    # lose the worker from act.
    key, svid = seeded.worker()
    issued = seeded.exchange(seeded.root_token(), key, svid, scope="refunds")
    assert issued.status_code == 200
    worker_token = issued.json()["access_token"]
    before = seeded.written()

    response = seeded.exchange(
        worker_token, seeded.orchestrator_key, seeded.orchestrator_svid()
    )

    assert _rejected(seeded, response, before) == {
        "error": "unauthorized_client",
        "error_description": "The client is not allowed to make this request. "
        "The actor is not a sub-agent of the subject token's client.",
    }


def test_exchange_http_rejects_foreign_act(seeded: Seeded) -> None:
    # A token whose act no longer names its client cannot be re-exchanged by it.
    root = seeded.root_token(act={"sub": seeded.spiffe(ORCHESTRATOR, "o-9")})
    before = seeded.written()

    response = seeded.exchange(
        root, seeded.orchestrator_key, seeded.orchestrator_svid(), scope="tickets"
    )

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The subject_token is invalid.",
    }
    assert seeded.refusal_reason() == (
        "subject_token: Token claim 'act.sub' "
        f"{seeded.spiffe(ORCHESTRATOR, 'o-9')!r} is not client_id "
        f"{seeded.orchestrator!r}"
    )


def test_self_exchange_http_rejects_longer_lifetime(seeded: Seeded) -> None:
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(
        root,
        seeded.orchestrator_key,
        seeded.orchestrator_svid(),
        requested_expiry="600",
    )

    body = _rejected(seeded, response, before)
    assert body["error"] == "invalid_request"
    assert LONGER.fullmatch(body["error_description"])


def test_self_exchange_http_keeps_act_and_lifetime(seeded: Seeded) -> None:
    root = seeded.root_token()

    response = seeded.exchange(
        root, seeded.orchestrator_key, seeded.orchestrator_svid(), scope="tickets"
    )

    assert response.status_code == 200
    claims = seeded.introspect(response.json()["access_token"])
    assert claims["act"] == {"sub": seeded.orchestrator}
    assert claims["exp"] <= seeded.introspect(root)["exp"]


def _part(value: object) -> str:
    return b64url_encode(json.dumps(value).encode())


def _root_claims(seeded: Seeded, **changes: Any) -> dict[str, Any]:
    payload = seeded.root_token(**changes).split(".")[1]
    return dict(json.loads(b64url_decode(payload) or b""))


def _alg_none(seeded: Seeded) -> str:
    header = _part({"alg": "none", "kid": seeded.ctx.keyring.active().kid})
    return f"{header}.{_part(_root_claims(seeded))}."


def _hs256_with_public_key(seeded: Seeded) -> str:
    key = seeded.ctx.keyring.active()
    secret = json.dumps(key.verification_key().to_jwk()).encode()
    signing_input = f"{_part({'alg': 'HS256', 'kid': key.kid, 'typ': 'at+jwt'})}."
    signing_input += _part(_root_claims(seeded))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def _with_header(seeded: Seeded, **members: object) -> str:
    key = seeded.ctx.keyring.active()
    header = {"kid": key.kid, "typ": "at+jwt", **members}
    return sign_jws_with_header(_root_claims(seeded), key, header)


def _signed_raw(seeded: Seeded, payload: str) -> str:
    key = seeded.ctx.keyring.active()
    header = json.dumps({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"})
    signing_input = (
        f"{b64url_encode(header.encode())}.{b64url_encode(payload.encode())}"
    )
    return f"{signing_input}.{b64url_encode(sign_bytes(key, signing_input.encode()))}"


def _changed_payload(seeded: Seeded) -> str:
    header, _, signature = seeded.root_token().split(".")
    forged = _part(_root_claims(seeded, scope="refunds tickets admin"))
    return f"{header}.{forged}.{signature}"


def _not_base64url(seeded: Seeded) -> str:
    header, payload, signature = seeded.root_token().split(".")
    return f"{header}.{payload[:8]}*{payload[9:]}.{signature}"


def _duplicate_claim(seeded: Seeded) -> str:
    payload = json.dumps(_root_claims(seeded))[:-1] + ', "sub": "mallory"}'
    return _signed_raw(seeded, payload)


def _deep_act(seeded: Seeded) -> str:
    act: dict[str, Any] = {"sub": seeded.orchestrator}
    for _ in range(16):
        act = {"sub": seeded.orchestrator, "act": act}
    return seeded.root_token(act=act, depth=17)


def _now(seeded: Seeded) -> int:
    return int(seeded.ctx.clock())


# Each case: a subject_token and the exact reason of the refusal in the audit log,
# as a pattern because the times in some of them come from the server's clock.
BAD_SUBJECT_TOKENS = [
    ("alg-none", _alg_none, re.escape("JWS algorithm 'none' is not allowed")),
    (
        "hs256",
        _hs256_with_public_key,
        re.escape("JWS algorithm 'HS256' is not allowed"),
    ),
    (
        "unknown-kid",
        lambda s: sign_jws(
            _root_claims(s), SigningKey.generate(kid="k9"), typ="at+jwt"
        ),
        re.escape("JWS kid 'k9' is not a known key"),
    ),
    (
        "jwk",
        lambda s: _with_header(s, jwk=s.orchestrator_key.verification_key().to_jwk()),
        re.escape("JWS header member 'jwk' is not allowed"),
    ),
    (
        "jku",
        lambda s: _with_header(s, jku="https://attacker.example/jwks"),
        re.escape("JWS header member 'jku' is not allowed"),
    ),
    (
        "x5u",
        lambda s: _with_header(s, x5u="https://attacker.example/cert.pem"),
        re.escape("JWS header member 'x5u' is not allowed"),
    ),
    (
        "crit",
        lambda s: _with_header(s, crit=["urn:example:unknown"]),
        re.escape("JWS header member 'crit' is not allowed"),
    ),
    (
        "svid",
        lambda s: s.orchestrator_svid(),
        re.escape("JWS typ 'JWT' is not the expected 'at+jwt'"),
    ),
    (
        "session",
        lambda s: s.admin_session(),
        re.escape("JWS typ 'session+jwt' is not the expected 'at+jwt'"),
    ),
    (
        "expired",
        lambda s: s.root_token(exp=_now(s) - 100),
        r"Token expired at \d+, now is \d+ \(leeway 30 s\)",
    ),
    (
        "not-yet-valid",
        lambda s: s.root_token(nbf=_now(s) + 100),
        r"Token is not valid before \d+, now is \d+ \(leeway 30 s\)",
    ),
    (
        "iat-in-future",
        lambda s: s.root_token(iat=_now(s) + 100),
        r"Token iat \d+ is in the future, now is \d+ \(leeway 30 s\)",
    ),
    (
        "wrong-iss",
        lambda s: s.root_token(iss="http://evil.example"),
        r"Token iss 'http://evil.example' is not the expected 'http://127\.0\.0\.1:\d+'",
    ),
    (
        "changed-payload",
        _changed_payload,
        r"JWS signature is invalid for kid '[^']+'",
    ),
    (
        "truncated",
        lambda s: s.root_token().rsplit(".", 1)[0],
        re.escape("JWS must have 3 parts, found 2"),
    ),
    (
        "not-base64url",
        _not_base64url,
        re.escape("JWS payload is not unpadded base64url"),
    ),
    (
        "jwe",
        lambda s: f"{_part({'alg': 'dir', 'enc': 'A256GCM'})}..aXY.Y2lwaGVy.dGFn",
        re.escape("JWE is not accepted, only compact JWS"),
    ),
    (
        "duplicate-claim",
        _duplicate_claim,
        re.escape("JSON member 'sub' is duplicated"),
    ),
    (
        "deep-act",
        _deep_act,
        re.escape("Token claim 'act' is nested deeper than 16 levels"),
    ),
]


@pytest.mark.parametrize(
    ("make", "reason"),
    [case[1:] for case in BAD_SUBJECT_TOKENS],
    ids=[case[0] for case in BAD_SUBJECT_TOKENS],
)
def test_exchange_http_rejects_bad_subject_token(
    seeded: Seeded, make: Any, reason: str
) -> None:
    subject = make(seeded)
    key, svid = seeded.worker()
    before = seeded.written()

    response = seeded.exchange(subject, key, svid, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The subject_token is invalid.",
    }
    assert re.fullmatch(f"subject_token: {reason}", seeded.refusal_reason() or "")


def test_exchange_http_rejects_token_as_actor(seeded: Seeded) -> None:
    root = seeded.root_token()
    before = seeded.written()

    response = seeded.exchange(root, seeded.orchestrator_key, root, scope="refunds")

    assert _rejected(seeded, response, before) == {
        "error": "invalid_grant",
        "error_description": "The grant or token presented is invalid. "
        "The actor_token is invalid.",
    }
    assert seeded.refusal_reason() == (
        "actor_token: JWS typ 'at+jwt' is not the expected 'JWT'"
    )
