"""Tamper detection: direct edits of the SQLite data, each found at its position."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, select, update

from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import leaf_hash
from agentiam.audit.tables import audit_events, tree_heads
from agentiam.audit.tree_head import sign_tree_head
from agentiam.audit.verify import verify_log
from agentiam.audit.verify_report import VerifyReport, uncovered_problem
from agentiam.jose import SigningKey

ISSUER = "http://127.0.0.1:8800"


@pytest.fixture
def filled(audit_log: AuditLog):
    """A log of 10 events with a signed tree head at size 10."""

    async def run() -> None:
        for number in range(10):
            await audit_log.record(
                AuditEvent(
                    "decision",
                    "deny" if number % 3 == 0 else "allow",
                    "granted",
                    task_path=["t-root"],
                    details={"number": number},
                )
            )
        await audit_log.sign_tree_head()

    asyncio.run(run())
    return audit_log


def _verify(log: AuditLog, keyring):
    return verify_log(log._engine, keyring.lookup, issuer=ISSUER)


def _row(engine, seq: int):
    with engine.connect() as conn:
        return conn.execute(select(audit_events).where(audit_events.c.seq == seq)).one()


def _set(engine, seq: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(audit_events).where(audit_events.c.seq == seq).values(**values)
        )


def _rechain(engine) -> None:
    """Recompute every chain hash, as an attacker with the hashing scheme would."""
    chain = GENESIS_CHAIN_HASH
    with engine.begin() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
        for row in rows:
            chain = next_chain_hash(chain, bytes(row.leaf_hash))
            conn.execute(
                update(audit_events)
                .where(audit_events.c.seq == row.seq)
                .values(chain_hash=chain)
            )


def test_verify_accepts_untouched_log(filled: AuditLog, keyring) -> None:
    report = _verify(filled, keyring)
    assert report.ok, report.problems
    assert report.events == 10
    assert report.tree_heads == 1


def test_verify_finds_edited_event(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    canonical = bytes(_row(engine, 4).canonical).replace(b'"allow"', b'"deny"')
    _set(engine, 4, canonical=canonical)

    problem = _verify(filled, keyring).first_problem
    assert problem is not None
    assert problem.position == "position 4"
    assert "leaf hash does not match the stored event (event edited)" in problem.message


def test_verify_finds_edited_and_rehashed_event(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    canonical = bytes(_row(engine, 4).canonical).replace(b'"allow"', b'"deny"')
    _set(
        engine, 4, canonical=canonical, leaf_hash=leaf_hash(canonical), decision="deny"
    )

    problem = _verify(filled, keyring).first_problem
    assert problem is not None
    assert problem.position == "position 4"
    assert "chain hash does not follow" in problem.message


def test_verify_finds_rechained_edit_by_tree_head(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    canonical = bytes(_row(engine, 4).canonical).replace(b'"allow"', b'"deny"')
    _set(
        engine, 4, canonical=canonical, leaf_hash=leaf_hash(canonical), decision="deny"
    )
    _rechain(engine)

    report = _verify(filled, keyring)
    assert [problem.position for problem in report.problems] == [
        "tree head 1 (size 10)"
    ]
    assert "differs from the signed root" in report.problems[0].message


def test_verify_finds_edited_column(filled: AuditLog, keyring) -> None:
    _set(filled._engine, 2, decision="deny")
    problem = _verify(filled, keyring).first_problem
    assert problem is not None
    assert problem.position == "position 2"
    assert "column 'decision' does not match" in problem.message


def test_verify_finds_deleted_event(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == 6))
    problem = _verify(filled, keyring).first_problem
    assert problem is not None
    assert problem.position == "position 6"
    assert "expected seq 6, found seq 7 (events deleted)" in problem.message


def test_verify_finds_reordered_events(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    first, second = _row(engine, 3), _row(engine, 5)
    columns = ("time", "type", "decision", "human", "grant_id", "agent", "task_id",
               "leaf_hash", "chain_hash", "canonical")  # fmt: skip
    _set(engine, 3, **{name: getattr(second, name) for name in columns})
    _set(engine, 5, **{name: getattr(first, name) for name in columns})

    problem = _verify(filled, keyring).first_problem
    assert problem is not None
    assert problem.position == "position 3"
    assert "chain hash does not follow" in problem.message


def test_verify_finds_reordered_and_rechained(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    first, second = _row(engine, 3), _row(engine, 5)
    columns = ("time", "type", "decision", "human", "grant_id", "agent", "task_id",
               "leaf_hash", "canonical")  # fmt: skip
    _set(engine, 3, **{name: getattr(second, name) for name in columns})
    _set(engine, 5, **{name: getattr(first, name) for name in columns})
    _rechain(engine)

    report = _verify(filled, keyring)
    assert [problem.position for problem in report.problems] == [
        "tree head 1 (size 10)"
    ]
    assert "events edited or reordered" in report.problems[0].message


def test_verify_finds_truncated_tail(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq >= 8))
    report = _verify(filled, keyring)
    assert report.events == 8
    # The deleted events left their audit_event_tasks rows behind.
    assert [problem.position for problem in report.problems] == [
        "tree head 1 (size 10)",
        "seq 8",
        "seq 9",
    ]
    assert "only 8 verified events, fewer than the signed size 10" in (
        report.problems[0].message
    )
    assert report.problems[1].message.startswith("audit_event_tasks has a row")


def test_verify_finds_forged_tree_head(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    forger = SigningKey.generate("ES256")
    head = sign_tree_head(10, filled.root(10), 1.0, forger, issuer=ISSUER)
    with engine.begin() as conn:
        conn.execute(
            tree_heads.insert().values(
                size=head.size, root=head.root, timestamp=head.timestamp,
                kid=head.kid, signature=head.signature, version=head.version,
            )
        )  # fmt: skip

    report = _verify(filled, keyring)
    assert [problem.position for problem in report.problems] == [
        "tree head 2 (size 10)"
    ]
    assert "signature is invalid (forged tree head)" in report.problems[0].message


def test_verify_finds_edited_tree_head_root(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(update(tree_heads).values(root=bytes(32)))
    report = _verify(filled, keyring)
    assert [problem.position for problem in report.problems] == [
        "tree head 1 (size 10)"
    ]
    assert (
        "do not match the signed tree head (row edited)" in report.problems[0].message
    )


def test_verify_finds_tampered_head_signature(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        signature = conn.execute(select(tree_heads.c.signature)).scalar_one()
        header, payload, sig = signature.split(".")
        forged = f"{header}.{payload}.{sig[:-4]}AAAA"
        conn.execute(update(tree_heads).values(signature=forged))
    report = _verify(filled, keyring)
    assert report.problems[0].position == "tree head 1 (size 10)"
    assert "forged tree head" in report.problems[0].message


def test_verify_warns_of_unsigned_tail(filled: AuditLog, keyring) -> None:
    asyncio.run(filled.record(AuditEvent("decision", "allow", "granted")))
    report = _verify(filled, keyring)
    assert report.ok, report.problems
    assert report.covered == 10
    assert [str(warning) for warning in report.warnings] == [
        "position 10: 1 event after seq 9 is covered by no signed tree head"
    ]


def test_verify_warns_of_log_without_heads(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(delete(tree_heads))
    report = _verify(filled, keyring)
    assert report.ok, report.problems
    assert [str(warning) for warning in report.warnings] == [
        "position 0: 10 events from seq 0 are covered by no signed tree head"
    ]


def test_verify_forged_head_covers_nothing(filled: AuditLog, keyring) -> None:
    forger = SigningKey.generate("ES256")
    asyncio.run(filled.record(AuditEvent("decision", "allow", "granted")))
    head = sign_tree_head(11, filled.root(11), 1.0, forger, issuer=ISSUER)
    with filled._engine.begin() as conn:
        conn.execute(
            tree_heads.insert().values(
                size=head.size, root=head.root, timestamp=head.timestamp,
                kid=head.kid, signature=head.signature, version=head.version,
            )
        )  # fmt: skip
    report = _verify(filled, keyring)
    assert report.covered == 10
    assert report.warnings[0].position == "position 10"


def _rehash_event(engine, seq: int, canonical: bytes) -> None:
    """Store ``canonical`` at ``seq`` with its leaf hash and every chain hash."""
    _set(engine, seq, canonical=canonical, leaf_hash=leaf_hash(canonical))
    _rechain(engine)


def test_verify_finds_edited_tree_head_timestamp(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(update(tree_heads).values(timestamp=1.0))
    report = _verify(filled, keyring)
    assert [str(problem) for problem in report.problems] == [
        "tree head 1 (size 10): the stored columns do not match the signed tree "
        "head (row edited)"
    ]


def test_verify_finds_edited_tree_head_version(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.execute(update(tree_heads).values(version=2))
    report = _verify(filled, keyring)
    assert [str(problem) for problem in report.problems] == [
        "tree head 1 (size 10): the stored columns do not match the signed tree "
        "head (row edited)"
    ]


def test_verify_names_rehashed_lone_surrogate(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    canonical = bytes(_row(engine, 4).canonical).replace(b'"granted"', b'"\\ud800"')
    _rehash_event(engine, 4, canonical)
    problem = _verify(filled, keyring).first_problem
    assert str(problem) == (
        "position 4: the stored event is not a valid audit event: Audit event "
        "cannot be encoded: String contains the lone surrogate U+D800."
    )


def test_verify_names_rehashed_inexact_integer(filled: AuditLog, keyring) -> None:
    engine = filled._engine
    canonical = bytes(_row(engine, 4).canonical).replace(
        b'"number":4', b'"number":9007199254740993'
    )
    _rehash_event(engine, 4, canonical)
    problem = _verify(filled, keyring).first_problem
    assert str(problem) == (
        "position 4: the stored event is not in canonical form (event edited)"
    )


@pytest.mark.parametrize("column", ["canonical", "leaf_hash", "chain_hash"])
def test_verify_finds_text_in_bytes_column(
    filled: AuditLog, keyring, column: str
) -> None:
    # SQLite stores a value of any type in any column.  The server cannot read
    # an event whose bytes were replaced by text of the same characters.
    value = bytes(getattr(_row(filled._engine, 4), column))
    with filled._engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE audit_events SET {column} = ? WHERE seq = 4",
            (value.decode("latin-1"),),
        )
    problem = _verify(filled, keyring).first_problem
    assert str(problem) == (
        f"position 4: column {column!r} contains str, not bytes (row edited)"
    )


def test_verify_finds_text_tree_head_root(filled: AuditLog, keyring) -> None:
    with filled._engine.begin() as conn:
        conn.exec_driver_sql("UPDATE audit_tree_heads SET root = 'text'")
    report = _verify(filled, keyring)
    assert [str(problem) for problem in report.problems] == [
        "tree head 1 (size 10): the stored columns do not match the signed tree "
        "head (row edited)"
    ]


@pytest.mark.parametrize(
    "details",
    [{"n": 2**60}, {"n": 2**53}, {"n": -(2**53)}, {"n": 1e16}, {"n": 1.2e20}],
    ids=["2**60", "2**53", "-2**53", "1e16", "1.2e20"],
)
def test_verify_accepts_numbers_read_as_doubles(
    audit_log: AuditLog, keyring, details: dict[str, object]
) -> None:
    async def run() -> None:
        await audit_log.record(AuditEvent("decision", "allow", "ok", details=details))
        await audit_log.sign_tree_head()

    asyncio.run(run())
    report = _verify(audit_log, keyring)
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("events", "covered", "expected"),
    [
        (13, 12, "position 12: 1 event after seq 11 is covered by no signed tree head"),
        (14, 12, "position 12: 2 events after seq 11 are covered by no signed tree "
                 "head"),
        (1, 0, "position 0: 1 event from seq 0 is covered by no signed tree head"),
        (3, 0, "position 0: 3 events from seq 0 are covered by no signed tree head"),
    ],
    ids=["one-after", "two-after", "one-from-start", "three-from-start"],
)  # fmt: skip
def test_uncovered_problem_counts_events(
    events: int, covered: int, expected: str
) -> None:
    problem = uncovered_problem(VerifyReport(events=events, covered=covered))

    assert str(problem) == expected
