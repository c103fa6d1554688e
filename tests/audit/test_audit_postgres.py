"""The audit log on PostgreSQL: batched appends, proofs and verification.

The append path and the proofs' leaf reads run driver SQL, whose placeholders
differ between SQLite and psycopg, so the same checks run on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import text
from tests.audit.conftest import AUDIT_TABLES, ISSUER, FakeKeyRing, FakeSettings
from tests.storage.conftest import POSTGRES_URL

from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import LeafHashes, consistency_proof, inclusion_proof
from agentiam.audit.verify import verify_log
from agentiam.storage.engine import create_engine
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_log() -> Iterator[AuditLog]:
    """An audit log in a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"agentiam_audit_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine: sqlalchemy.Engine = create_engine(
        POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}
    )
    metadata.create_all(engine, tables=AUDIT_TABLES)
    writer = GroupCommitWriter(engine, batch_max=64, batch_wait_ms=1)
    writer.start()
    try:
        yield AuditLog(
            engine=engine,
            writer=writer,
            settings=FakeSettings(),  # type: ignore[arg-type]
            keyring=FakeKeyRing(),  # type: ignore[arg-type]
            tree_head_every=0,
        )
    finally:
        writer.close()
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        "decision",
        "allow",
        "granted",
        actors=["spiffe://agentiam.local/agent/worker/i-1"],
        task_path=["t-root", f"t-{number % 4}"],
        details={"number": number},
    )


def test_postgres_appends_prove_and_verify(pg_log: AuditLog) -> None:
    async def run() -> list[int]:
        first = await asyncio.gather(*(pg_log.record(_event(n)) for n in range(150)))
        await pg_log.sign_tree_head()
        rest = await asyncio.gather(
            *(pg_log.record(_event(n)) for n in range(150, 300))
        )
        await pg_log.sign_tree_head()
        return [*first, *rest]

    seqs = asyncio.run(run())
    assert sorted(seqs) == list(range(300))
    # One more in a caller's unit of work, after the batched ones.
    pg_log._writer.run_sync(lambda conn: pg_log.record_in(conn, _event(300)))

    leaves = [pg_log.get(seq).leaf_hash for seq in range(301)]  # type: ignore[union-attr]
    reference = LeafHashes(leaves)
    assert pg_log.root(301) == reference.root()
    for seq in (0, 63, 64, 150, 299, 300):
        assert pg_log.inclusion_proof(seq, 301) == inclusion_proof(
            seq, 301, reference.subtree_root
        )
    assert pg_log.consistency_proof(150, 301) == consistency_proof(
        150, 301, reference.subtree_root
    )
    # A log opened afterwards has no recent leaves and reads them from the table.
    reopened = AuditLog(engine=pg_log._engine, writer=pg_log._writer)
    for seq in (5, 200, 300):
        assert reopened.inclusion_proof(seq, 301) == inclusion_proof(
            seq, 301, reference.subtree_root
        )

    keyring = pg_log.keyring
    assert keyring is not None
    report = verify_log(pg_log._engine, keyring.lookup, issuer=ISSUER)
    assert report.ok, report.problems
    assert (report.events, report.tree_heads) == (301, 2)
