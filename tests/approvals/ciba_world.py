"""Helpers of the approvals tests: a real database and writer, injected time.

The server context is built by hand from the real engine, group-commit writer,
revocation set and replay cache. It has a fixed signing key and an audit recorder
that keeps events in memory, so each test can assert the events a step wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from agentiam.api.context import ServerContext
from agentiam.approvals.authorize import AuthRequestCaller, create_request_work
from agentiam.approvals.request import AuthRequestParams
from agentiam.approvals.tables import ciba_requests
from agentiam.audit.events import AuditEvent
from agentiam.config import Settings
from agentiam.delegation.grant_tables import grants
from agentiam.identity import tables as identity_tables
from agentiam.identity.classes import AgentClass, AgentClassStore
from agentiam.identity.passwords import hash_password
from agentiam.identity.users import User, UserStore
from agentiam.jose import ReplayCache, SigningKey, VerificationKey
from agentiam.revocation import RevocationSet
from agentiam.revocation.tables import revocations
from agentiam.storage.engine import create_engine
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter
from agentiam.tasks.tables import tasks

START = 1_800_000_000.0
ISSUER = "http://127.0.0.1:8800"
TRUST_DOMAIN = "agentiam.local"
API = "https://support.example/api"
CRM = "https://crm.example/api"
INSTANCE = f"spiffe://{TRUST_DOMAIN}/agent/support-orchestrator/i-1"


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

    def record_in(self, conn: Connection, event: AuditEvent) -> None:
        self.events.append(event)

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
class World:
    """The context and the fixed principals of one test."""

    ctx: ServerContext
    clock: Clock
    audit: MemoryAudit
    keyring: FixedKeyRing
    alice: User
    bob: User
    agent_class: AgentClass
    instance_key: SigningKey

    @property
    def jkt(self) -> str:
        return self.instance_key.thumbprint()

    def run(self, work: Any) -> Any:
        return self.ctx.writer.run_sync(work)

    def submit(self, work: Any) -> Any:
        async def go() -> Any:
            return await self.ctx.writer.submit(work)

        return asyncio.run(go())

    def make_request(self, **changes: Any) -> tuple[str, str]:
        """Store a pending request by the instance for alice; return (id, secret)."""
        values: dict[str, Any] = {
            "login_hint": "alice",
            "scopes": ("refunds", "tickets"),
            "audiences": (API,),
            "authorization_details": (
                {"type": "refund", "max_amount": "100", "currency": "EUR"},
            ),
            "binding_message": "Work ticket T-1",
            "max_depth": 2,
            "grant_ttl": 1800,
        }
        values.update(changes)
        caller = AuthRequestCaller(INSTANCE, "support-orchestrator", self.jkt)
        auth_req_id, work = create_request_work(
            caller,
            AuthRequestParams(**values),
            self.alice,
            audit=self.audit,
            now=self.clock(),
            expires_in=self.ctx.settings.ciba_expires_in,
            interval=self.ctx.settings.ciba_interval,
        )
        request = self.run(work)
        return request.id, auth_req_id


def open_world(tmp_path: Path) -> Iterator[World]:
    """Open a world on a fresh database in ``tmp_path`` and close it afterwards."""
    engine = create_engine(f"sqlite:///{tmp_path / 'approvals.db'}")
    metadata.create_all(
        engine,
        tables=[
            identity_tables.users,
            identity_tables.agent_classes,
            ciba_requests,
            grants,
            tasks,
            revocations,
        ],
    )
    writer = GroupCommitWriter(engine, batch_wait_ms=0)
    writer.start()

    clock = Clock()
    audit = MemoryAudit()
    keyring = FixedKeyRing()
    settings = Settings(issuer=ISSUER, trust_domain=TRUST_DOMAIN)
    ctx = ServerContext(
        settings=settings,
        engine=engine,
        writer=writer,
        keyring=keyring,  # type: ignore[arg-type]
        audit=audit,  # type: ignore[arg-type]
        revocations=RevocationSet(engine, clock=clock),
        replay=ReplayCache(10_000),
        clock=clock,
    )

    users = UserStore(engine)
    alice = writer.run_sync(
        lambda conn: users.add_in(
            conn, login="alice", password_hash=hash_password("alice-pw"), now=START
        )
    )
    bob = writer.run_sync(
        lambda conn: users.add_in(
            conn, login="bob", password_hash=hash_password("bob-pw"), now=START
        )
    )
    agent_class = AgentClass(
        name="support-orchestrator",
        owner=alice.id,
        scopes=frozenset({"tickets", "crm", "refunds"}),
        audiences=frozenset({API, CRM}),
        may_spawn=frozenset(),
        max_depth=3,
        default_ttl=240,
        max_ttl=900,
    )
    writer.run_sync(
        lambda conn: AgentClassStore(engine).add_in(conn, agent_class, now=START)
    )

    yield World(
        ctx=ctx,
        clock=clock,
        audit=audit,
        keyring=keyring,
        alice=alice,
        bob=bob,
        agent_class=agent_class,
        instance_key=SigningKey.generate("ES256"),
    )

    writer.close()
    engine.dispose()
