"""Fixtures for the audit tests: a SQLite data dir, a writer and a key ring."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentiam.audit.log import AuditLog
from agentiam.audit.tables import (
    audit_event_actors,
    audit_event_tasks,
    audit_events,
    audit_tree_nodes,
    tree_heads,
)
from agentiam.jose import SigningKey, VerificationKey
from agentiam.storage.engine import create_engine
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter

AUDIT_TABLES = [
    audit_events,
    audit_event_tasks,
    audit_event_actors,
    audit_tree_nodes,
    tree_heads,
]
ISSUER = "http://127.0.0.1:8800"


@dataclass
class FakeKeyRing:
    """The two key-ring calls the audit log makes, over keys made in memory."""

    keys: list[SigningKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys.append(SigningKey.generate("ES256"))

    def active(self) -> SigningKey:
        return self.keys[-1]

    def lookup(self, kid: str) -> VerificationKey | None:
        for key in self.keys:
            if key.kid == kid:
                return VerificationKey.from_jwk(key.public_jwk())
        return None


@dataclass
class FakeSettings:
    issuer: str = ISSUER


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[object, GroupCommitWriter]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'agentiam.db'}")
    metadata.create_all(engine, tables=AUDIT_TABLES)
    writer = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=1)
    writer.start()
    yield engine, writer
    writer.close()
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyring() -> FakeKeyRing:
    return FakeKeyRing()


@pytest.fixture
def audit_log(database, clock, keyring) -> AuditLog:
    engine, writer = database
    return AuditLog(
        engine=engine,
        writer=writer,
        settings=FakeSettings(),  # type: ignore[arg-type]
        clock=clock,
        keyring=keyring,  # type: ignore[arg-type]
        tree_head_every=0,
    )
