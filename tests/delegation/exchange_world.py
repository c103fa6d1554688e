"""The world of the exchange tests: a real database and writer, injected time.

The context is built by hand from the real engine, group-commit writer, revocation
set and replay cache, with a fixed signing key and an audit recorder in memory, so a
test can assert the events a step wrote. Tokens are signed directly with the key.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import Connection
from starlette.requests import Request

from agentiam.api.context import ServerContext
from agentiam.api.forms import Form
from agentiam.audit.events import AuditEvent
from agentiam.config import Settings
from agentiam.delegation.exchange import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    TokenExchangeHandler,
)
from agentiam.delegation.grant_tables import grants
from agentiam.delegation.grants import Grant, GrantStore
from agentiam.identity import tables as identity_tables
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import User, UserStore
from agentiam.jose import ReplayCache, SigningKey, VerificationKey, sign_jws
from agentiam.jose.dpop import create_dpop_proof
from agentiam.revocation import RevocationSet
from agentiam.revocation.tables import revocations
from agentiam.storage.metadata import metadata
from agentiam.tasks import Task, task_store
from agentiam.tasks.tables import tasks

START = 1_800_000_000.0
ISSUER = "http://127.0.0.1:8800"
TRUST_DOMAIN = "agentiam.local"
API = "https://support.example/api"
CRM = "https://crm.example/api"
ORCHESTRATOR = "support-orchestrator"
WORKER = "refund-worker"
ROGUE = "rogue-worker"


def spiffe(agent_class: str, instance: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/agent/{agent_class}/{instance}"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class MemoryAudit:
    """Keeps recorded events in memory, like ``AuditLog`` without the log."""

    events: list[AuditEvent] = field(default_factory=list)
    # The number of events of each record_many_in call.
    appends: list[int] = field(default_factory=list)

    def record_in(self, conn: Connection, event: AuditEvent) -> None:
        self.events.append(event)

    def record_many_in(
        self, conn: Connection, events: Sequence[AuditEvent]
    ) -> list[int]:
        first = len(self.events)
        self.events.extend(events)
        self.appends.append(len(events))
        return list(range(first, len(self.events)))

    async def record(self, event: AuditEvent) -> int:
        self.events.append(event)
        return len(self.events)

    def types(self) -> list[str]:
        return [event.type for event in self.events]


class FixedKeyRing:
    """One signing key, looked up by its kid."""

    def __init__(self) -> None:
        self.key = SigningKey.generate("ES256")

    def active(self) -> SigningKey:
        return self.key

    def lookup(self, kid: str) -> VerificationKey | None:
        if kid == self.key.kid:
            return self.key.verification_key()
        return None


@dataclass
class Agent:
    """An agent instance: its SPIFFE ID, key and JWT-SVID."""

    spiffe_id: str
    key: SigningKey
    svid: str


@dataclass
class World:
    """The context, the grant, the root task and the agents of one test."""

    ctx: ServerContext
    clock: Clock
    audit: MemoryAudit
    keyring: FixedKeyRing
    alice: User
    grant: Grant
    root_task: Task
    orchestrator: Agent
    handler: TokenExchangeHandler

    def run(self, work: Any) -> Any:
        return self.ctx.writer.run_sync(work)

    def agent(
        self,
        agent_class: str,
        *,
        parent: str | None = None,
        name: str | None = None,
        ancestors: list[str] | None = None,
    ) -> Agent:
        """Make an instance of a class with a fresh key and an SVID."""
        key = SigningKey.generate("ES256")
        spiffe_id = spiffe(agent_class, name or secrets.token_hex(4))
        now = int(self.clock())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": ISSUER,
            "aud": [ISSUER],
            "sub": spiffe_id,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "cnf": {"jkt": key.thumbprint()},
        }
        if parent is not None:
            claims["parent"] = parent
            claims["ancestors"] = [parent] if ancestors is None else ancestors
        elif ancestors is not None:
            claims["ancestors"] = ancestors
        svid = sign_jws(claims, self.keyring.key, typ="JWT")
        return Agent(spiffe_id, key, svid)

    def root_token(self, *, lifetime: int = 300, **changes: Any) -> str:
        """Sign the grant's first token for the orchestrator, depth 1."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "ver": 1,
            "iss": ISSUER,
            "aud": [API, CRM],
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(12),
            "sub": self.alice.id,
            "client_id": self.orchestrator.spiffe_id,
            "scope": "crm refunds tickets",
            "act": {"sub": self.orchestrator.spiffe_id},
            "depth": 1,
            "grant": {"id": self.grant.id, "receipt_hash": self.grant.receipt_hash},
            "task": {"id": self.root_task.id, "path": list(self.root_task.path)},
            "authorization_details": [
                {"type": "refund", "limit": {"amount": "100", "currency": "EUR"}}
            ],
            "cnf": {"jkt": self.orchestrator.key.thumbprint()},
        }
        claims.update(changes)
        return sign_jws(claims, self.keyring.key, typ="at+jwt")

    def exchange(
        self,
        subject_token: str,
        actor: Agent | None,
        *,
        proof_key: SigningKey | None = None,
        **params: str | list[str],
    ) -> dict[str, Any]:
        """Run the exchange handler as POST /token would; a list value repeats."""
        form: dict[str, str | list[str]] = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
        }
        if actor is not None:
            form["actor_token"] = actor.svid
            form["actor_token_type"] = JWT_TOKEN_TYPE
        form.update(params)
        key = proof_key or (actor.key if actor is not None else self.orchestrator.key)
        proof = create_dpop_proof(
            key, htm="POST", htu=f"{ISSUER}/token", now=self.clock()
        )
        request = Request(
            {
                "type": "http",
                "method": "POST",
                "path": "/token",
                "headers": [(b"dpop", proof.encode())],
                "query_string": b"",
            }
        )

        async def go() -> dict[str, Any]:
            return await self.handler.handle(Form(form), request, self.ctx)

        return asyncio.run(go())

    def verify(self, token: str) -> dict[str, Any]:
        from agentiam.tokens import verify_access_token

        claims = verify_access_token(
            token, self.keyring.lookup, issuer=ISSUER, audience=None, now=self.clock()
        )
        return claims.to_dict()


def _add_class(engine: Any, writer: Any, owner: str, **values: Any) -> AgentClass:
    fields: dict[str, Any] = {
        "owner": owner,
        "scopes": frozenset({"tickets", "crm", "refunds"}),
        "audiences": frozenset({API, CRM}),
        "may_spawn": frozenset(),
        "max_depth": 3,
        "default_ttl": 240,
        "max_ttl": 900,
    }
    fields.update(values)
    agent_class = AgentClass(**fields)
    writer.run_sync(
        lambda conn: AgentClassStore(engine).add_in(conn, agent_class, now=START)
    )
    return agent_class


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'exchange.db'}")
    metadata.create_all(
        engine,
        tables=[
            identity_tables.users,
            identity_tables.agent_classes,
            grants,
            tasks,
            revocations,
        ],
    )
    from agentiam.storage.writer import GroupCommitWriter

    writer = GroupCommitWriter(engine, batch_wait_ms=0)
    writer.start()

    clock = Clock()
    audit = MemoryAudit()
    keyring = FixedKeyRing()
    settings = Settings(issuer=ISSUER, trust_domain=TRUST_DOMAIN)
    revocation_set = RevocationSet(engine, clock=clock)
    ctx = ServerContext(
        settings=settings,
        engine=engine,
        writer=writer,
        keyring=keyring,  # type: ignore[arg-type]
        audit=audit,  # type: ignore[arg-type]
        revocations=revocation_set,
        replay=ReplayCache(10_000),
        clock=clock,
    )

    users = UserStore(engine)
    alice = writer.run_sync(
        lambda conn: users.add_in(
            conn, login="alice", password_hash=hash_password("alice-pw"), now=START
        )
    )
    _add_class(engine, writer, alice.id, name=WORKER, scopes=frozenset({"refunds"}))
    _add_class(engine, writer, alice.id, name=ROGUE)
    _add_class(
        engine,
        writer,
        alice.id,
        name=ORCHESTRATOR,
        may_spawn=frozenset({WORKER, ORCHESTRATOR}),
        allow_impersonation=True,
    )

    grant = Grant(
        id="grt_" + secrets.token_hex(8),
        user_id=alice.id,
        agent_class=ORCHESTRATOR,
        scopes=("crm", "refunds", "tickets"),
        audiences=(API, CRM),
        authorization_details=(
            {"type": "refund", "limit": {"amount": "100", "currency": "EUR"}},
        ),
        max_depth=2,
        expires_at=START + 3600,
        receipt="receipt",
        receipt_hash=secrets.token_urlsafe(32),
        created_at=START,
    )
    writer.run_sync(lambda conn: GrantStore(engine).insert_in(conn, grant))

    store = task_store(engine, revocation_set)
    orchestrator_key = SigningKey.generate("ES256")
    orchestrator_id = spiffe(ORCHESTRATOR, "o-1")
    root_task = writer.run_sync(
        lambda conn: store.open_in(
            conn,
            grant_id=grant.id,
            parent_id=None,
            purpose="Work ticket T-1",
            scopes=grant.scopes,
            audiences=grant.audiences,
            expires_at=grant.expires_at,
            opened_by=orchestrator_id,
            now=START,
        )
    )

    result = World(
        ctx=ctx,
        clock=clock,
        audit=audit,
        keyring=keyring,
        alice=alice,
        grant=grant,
        root_task=root_task,
        orchestrator=Agent(orchestrator_id, orchestrator_key, ""),
        handler=TokenExchangeHandler(),
    )
    result.orchestrator = _resign(result, orchestrator_key, orchestrator_id)
    yield result

    writer.close()
    engine.dispose()


def _resign(world: World, key: SigningKey, spiffe_id: str) -> Agent:
    now = int(world.clock())
    claims = {
        "ver": 1,
        "iss": ISSUER,
        "aud": [ISSUER],
        "sub": spiffe_id,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(12),
        "cnf": {"jkt": key.thumbprint()},
    }
    return Agent(spiffe_id, key, sign_jws(claims, world.keyring.key, typ="JWT"))
