"""Tamper detection in ``audit_tree_nodes`` and ``audit_decision_ids``."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import delete, func, insert, select, update
from tests.audit.test_audit_postgres import pg_log  # noqa: F401 (a fixture)

from agentiam.audit.chain import b64url
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import AuditLog
from agentiam.audit.routes import _append_decisions
from agentiam.audit.tables import audit_decision_ids, audit_tree_nodes
from agentiam.audit.tree import nodes_for_leaves
from agentiam.audit.verify import verify_log
from agentiam.audit.verify_report import Problem, VerifyReport
from agentiam.storage.metadata import metadata

ISSUER = "http://127.0.0.1:8800"
CLIENT = "rs-orders"
NODES = audit_tree_nodes.c
IDS = audit_decision_ids.c


def _event(number: int) -> AuditEvent:
    """Return event ``number``: an odd number is a decision a client sent."""
    if number % 2 == 0:
        return AuditEvent(
            "session.created",
            "allow",
            "issued",
            human=f"h-{number}",
            time=1_750_000_000.0 + number,
        )
    return AuditEvent(
        "decision",
        "allow",
        "granted",
        request={"method": "GET", "path": "/orders", "status": 200},
        details={"client_id": CLIENT, "decision_id": f"d-{number}", "jti": None},
        time=1_750_000_000.0 + number,
    )


def _append(log: AuditLog, first: int, count: int) -> None:
    """Append events ``first`` onwards; the route's code writes the decision ids."""
    with log._engine.begin() as conn:
        for number in range(first, first + count):
            event = _event(number)
            if event.type == "decision":
                assert _append_decisions(conn, log, CLIENT, [event]) == [number]
            else:
                log.record_in(conn, event)
    log.note_committed(first + count)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_log(request: pytest.FixtureRequest) -> AuditLog:
    """An empty audit log with a decision id table, on SQLite or on PostgreSQL."""
    name = "audit_log" if request.param == "sqlite" else "pg_log"
    log: AuditLog = request.getfixturevalue(name)
    metadata.create_all(log._engine, tables=[audit_decision_ids])
    return log


@pytest.fixture
def filled(empty_log: AuditLog) -> AuditLog:
    """A signed log of 200 events: nodes (6, 0), (6, 1), (6, 2) and (7, 0)."""
    _append(empty_log, 0, 200)
    empty_log.sign_tree_head_sync()
    return empty_log


def _verify(log: AuditLog) -> VerifyReport:
    assert log.keyring is not None
    return verify_log(log._engine, log.keyring.lookup, issuer=ISSUER)


def _execute(log: AuditLog, statement) -> None:
    with log._engine.begin() as conn:
        conn.execute(statement)


def _node(log: AuditLog, level: int, idx: int) -> bytes:
    query = select(NODES.hash).where(NODES.level == level, NODES.idx == idx)
    with log._engine.connect() as conn:
        return bytes(conn.execute(query).scalar_one())


def _node_count(log: AuditLog) -> int:
    with log._engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(audit_tree_nodes)).scalar()
        )


def test_verify_derived_accepts_untouched_log(filled: AuditLog) -> None:
    report = _verify(filled)
    assert report.ok, report.problems
    assert report.events == 200
    assert report.warnings == []
    assert _node_count(filled) == 4


def test_verify_nodes_match_bulk_writer(filled: AuditLog) -> None:
    # The append path stores the nodes that the bulk writer computes, and
    # verify recomputes them.
    leaves = [filled.get(seq).leaf_hash for seq in range(200)]  # type: ignore[union-attr]
    for row in nodes_for_leaves(leaves):
        assert _node(filled, row["level"], row["idx"]) == row["hash"]


def test_verify_finds_deleted_node(filled: AuditLog) -> None:
    _execute(filled, delete(audit_tree_nodes).where(NODES.level == 7, NODES.idx == 0))
    expected = [
        Problem(
            "seq 127",
            "audit_tree_nodes has no row for level 7 idx 0 "
            "(tree node deleted or edited)",
        )
    ]
    assert _verify(filled).problems == expected
    # Verify reads the table as it is and does not rebuild it.
    assert _verify(filled).problems == expected
    assert _node_count(filled) == 3


@pytest.mark.parametrize(
    ("level", "idx", "seq"),
    [(6, 3, 255), (8, 0, 255), (40, 0, (1 << 40) - 1)],
    ids=["next", "higher", "far"],
)
def test_verify_finds_inserted_node(
    filled: AuditLog, level: int, idx: int, seq: int
) -> None:
    _execute(
        filled, insert(audit_tree_nodes).values(level=level, idx=idx, hash=b"x" * 32)
    )
    assert _verify(filled).problems == [
        Problem(
            f"seq {seq}",
            f"audit_tree_nodes has a row for level {level} idx {idx} that the "
            "leaves do not derive (tree node inserted or edited)",
        )
    ]


@pytest.mark.parametrize(
    ("level", "idx", "value", "reason"),
    [
        (3, 0, b"x" * 32, "levels below 6 are not stored"),
        (6, -1, b"x" * 32, "its idx is negative"),
        (9, 0, b"x" * 31, "its hash is 31 bytes, not 32"),
    ],
    ids=["below-stored-levels", "negative", "short-hash"],
)
def test_verify_finds_malformed_node(
    filled: AuditLog, level: int, idx: int, value: bytes, reason: str
) -> None:
    _execute(filled, insert(audit_tree_nodes).values(level=level, idx=idx, hash=value))
    assert _verify(filled).problems == [
        Problem(
            "tree nodes",
            f"audit_tree_nodes has a row for level {level} idx {idx} that is not "
            f"a tree node: {reason} (tree node inserted or edited)",
        )
    ]


def test_verify_finds_edited_node_hash(filled: AuditLog) -> None:
    stored = _node(filled, 6, 1)
    forged = hashlib.sha256(b"forged").digest()
    _execute(
        filled,
        update(audit_tree_nodes)
        .where(NODES.level == 6, NODES.idx == 1)
        .values(hash=forged),
    )
    assert _verify(filled).problems == [
        Problem(
            "seq 127",
            f"audit_tree_nodes row for level 6 idx 1 has hash {b64url(forged)}, "
            f"expected {b64url(stored)} (tree node edited)",
        )
    ]


def test_verify_finds_edited_node_key(filled: AuditLog) -> None:
    _execute(
        filled,
        update(audit_tree_nodes).where(NODES.level == 6, NODES.idx == 2).values(idx=5),
    )
    assert [str(problem) for problem in _verify(filled).problems] == [
        "seq 191: audit_tree_nodes has no row for level 6 idx 2 "
        "(tree node deleted or edited)",
        "seq 383: audit_tree_nodes has a row for level 6 idx 5 that the leaves "
        "do not derive (tree node inserted or edited)",
    ]


def test_verify_finds_nodes_across_batches(
    filled: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 50 events end inside blocks of 64 leaves.
    monkeypatch.setattr("agentiam.audit.verify._BATCH", 50)
    assert _verify(filled).ok
    _execute(filled, delete(audit_tree_nodes).where(NODES.level == 6, NODES.idx == 0))
    _execute(filled, delete(audit_decision_ids).where(IDS.decision_id == "d-151"))
    assert [str(problem) for problem in _verify(filled).problems] == [
        "seq 63: audit_tree_nodes has no row for level 6 idx 0 "
        "(tree node deleted or edited)",
        f"seq 151: audit_decision_ids has no row for client_id {CLIENT!r} "
        "decision_id 'd-151' (decision id row deleted or edited)",
    ]


def test_verify_derived_accepts_unsigned_tail(filled: AuditLog) -> None:
    # 100 more events complete nodes (6, 3), (7, 1) and (8, 0) after the head.
    _append(filled, 200, 100)
    assert _node_count(filled) == 7
    report = _verify(filled)
    assert report.ok, report.problems
    assert report.events == 300
    assert [str(warning) for warning in report.warnings] == [
        "position 200: 100 events after seq 199 are covered by no signed tree head"
    ]


def test_verify_finds_deleted_tail_node(filled: AuditLog) -> None:
    _append(filled, 200, 100)
    _execute(filled, delete(audit_tree_nodes).where(NODES.level == 8, NODES.idx == 0))
    assert _verify(filled).problems == [
        Problem(
            "seq 255",
            "audit_tree_nodes has no row for level 8 idx 0 "
            "(tree node deleted or edited)",
        )
    ]


def test_verify_nodes_of_short_log(empty_log: AuditLog) -> None:
    # 63 events complete no node, so any stored node is extra.
    _append(empty_log, 0, 63)
    empty_log.sign_tree_head_sync()
    assert _verify(empty_log).ok
    _execute(empty_log, insert(audit_tree_nodes).values(level=6, idx=0, hash=b"x" * 32))
    assert [str(problem) for problem in _verify(empty_log).problems] == [
        "seq 63: audit_tree_nodes has a row for level 6 idx 0 that the leaves "
        "do not derive (tree node inserted or edited)"
    ]


def test_verify_finds_deleted_decision_id(filled: AuditLog) -> None:
    _execute(filled, delete(audit_decision_ids).where(IDS.decision_id == "d-3"))
    assert _verify(filled).problems == [
        Problem(
            "seq 3",
            f"audit_decision_ids has no row for client_id {CLIENT!r} "
            "decision_id 'd-3' (decision id row deleted or edited)",
        )
    ]


@pytest.mark.parametrize("seq", [-1, 4, 5, 200, 5000])
def test_verify_finds_inserted_decision_id(filled: AuditLog, seq: int) -> None:
    # Seq 4 is an event of another type, 5 a decision with another id, and
    # 200 and 5000 have no event.
    _execute(
        filled,
        insert(audit_decision_ids).values(client_id=CLIENT, decision_id="d-x", seq=seq),
    )
    assert _verify(filled).problems == [
        Problem(
            f"seq {seq}",
            f"audit_decision_ids has a row for client_id {CLIENT!r} decision_id "
            "'d-x' that the event does not derive (decision id row inserted or "
            "edited)",
        )
    ]


def test_verify_finds_edited_decision_id_seq(filled: AuditLog) -> None:
    _execute(
        filled,
        update(audit_decision_ids).where(IDS.decision_id == "d-7").values(seq=9),
    )
    assert [str(problem) for problem in _verify(filled).problems] == [
        f"seq 7: audit_decision_ids row for client_id {CLIENT!r} decision_id "
        "'d-7' has seq 9, expected 7 (decision id row edited)",
        f"seq 9: audit_decision_ids has a row for client_id {CLIENT!r} "
        "decision_id 'd-7' that the event does not derive (decision id row "
        "inserted or edited)",
    ]


@pytest.mark.parametrize(
    ("column", "value"), [("decision_id", "d-x11"), ("client_id", "rs-other")]
)
def test_verify_finds_edited_decision_id_key(
    filled: AuditLog, column: str, value: str
) -> None:
    _execute(
        filled,
        update(audit_decision_ids)
        .where(IDS.decision_id == "d-11")
        .values({column: value}),
    )
    client, decision = (CLIENT, value) if column == "decision_id" else (value, "d-11")
    assert [str(problem) for problem in _verify(filled).problems] == [
        f"seq 11: audit_decision_ids has no row for client_id {CLIENT!r} "
        "decision_id 'd-11' (decision id row deleted or edited)",
        f"seq 11: audit_decision_ids has a row for client_id {client!r} "
        f"decision_id {decision!r} that the event does not derive (decision id "
        "row inserted or edited)",
    ]


def test_verify_decision_ids_of_unsigned_tail(filled: AuditLog) -> None:
    _append(filled, 200, 20)
    assert _verify(filled).ok
    _execute(filled, delete(audit_decision_ids).where(IDS.decision_id == "d-211"))
    assert [str(problem) for problem in _verify(filled).problems] == [
        f"seq 211: audit_decision_ids has no row for client_id {CLIENT!r} "
        "decision_id 'd-211' (decision id row deleted or edited)"
    ]


def test_verify_counts_decision_ids_past_limit(filled: AuditLog) -> None:
    # 220 events contain 110 decisions.
    _append(filled, 200, 20)
    _execute(filled, delete(audit_decision_ids))
    problems = _verify(filled).problems
    assert len(problems) == 101
    assert problems[0].position == "seq 1"
    assert problems[99].position == "seq 199"
    assert problems[100] == Problem(
        "decision ids",
        "10 more decision id rows differ from their events (only the first 100 "
        "are listed)",
    )


def test_verify_derived_stops_at_chain_break(
    filled: AuditLog,
) -> None:
    from agentiam.audit.tables import audit_events

    _execute(filled, delete(audit_events).where(audit_events.c.seq == 100))
    _execute(filled, delete(audit_decision_ids).where(IDS.decision_id == "d-99"))
    _execute(filled, delete(audit_decision_ids).where(IDS.decision_id == "d-101"))
    _execute(filled, delete(audit_tree_nodes).where(NODES.level == 6, NODES.idx == 2))
    positions = [problem.position for problem in _verify(filled).problems]
    assert positions[0] == "position 100"
    assert "seq 99" in positions
    assert "seq 101" not in positions
    assert "seq 191" not in positions


def test_verify_skips_rows_appended_mid_scan(
    filled: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentiam.audit import verify

    scan = verify._batches

    def batches_then_append(engine):
        yield from scan(engine)
        # Nodes (6, 3), (7, 1), (8, 0) and 50 decision ids of events the scan
        # did not read.
        _append(filled, 200, 100)

    monkeypatch.setattr(verify, "_batches", batches_then_append)
    report = _verify(filled)
    assert report.ok, report.problems
    assert report.events == 200
    assert _node_count(filled) == 7


def test_verify_without_decision_id_table(audit_log: AuditLog) -> None:
    # The table is absent, so a decision sent by a client has no row.
    with audit_log._engine.begin() as conn:
        audit_log.record_many_in(conn, [_event(0), _event(1)])
    audit_log.note_committed(2)
    audit_log.sign_tree_head_sync()
    assert [str(problem) for problem in _verify(audit_log).problems] == [
        f"seq 1: audit_decision_ids has no row for client_id {CLIENT!r} "
        "decision_id 'd-1' (decision id row deleted or edited)"
    ]
