"""Full verification of a stored audit log against its hash chain and signed heads.

``verify_log`` streams the events once in ``seq`` order.  At each position it
checks that the positions are contiguous from 0 and that the leaf hash is the hash
of the stored canonical bytes.  It also checks that the bytes decode to a valid
event matching the indexed columns, and that the chain hash follows from the
previous one.  It then
checks every stored tree head: its signature, and that its root equals the root
recomputed from the leaves at its size.  Memory use is O(log n) for the roots plus
the sorted list of head sizes.

``verify_export`` runs the same checks over a file written by ``agentiam audit
export``, so an auditor needs only the file and the server's public keys.  It
reads the lines once, as they come.  The tree heads follow the events in an
export, so it keeps every leaf hash (32 bytes an event, 32 MB for a million) and
the subtree roots above ``NODE_LEVEL`` to compute each head's root at the end.

Every event must be covered by a signed tree head: a head, stored or trusted,
whose signature and root verify and whose size is above the event's ``seq``.  An
export with no such head, or with events after the largest one, fails: anyone can
recompute the unkeyed leaf and chain hashes, so only a signature binds the events.
``agentiam audit export`` signs a head over every event it writes, so an honest
export is always covered.  The database may hold a tail that the server has not
signed yet (it signs every N events or T milliseconds), so ``verify_log`` reports
an uncovered tail as a warning, not a problem.

Both take ``trusted_heads``: tree heads the auditor kept from earlier, outside the
log.  A log that was cut back or rewritten and then re-signed passes its own heads,
so only an outside head detects it.  Each trusted head must be verified by its
signature, the log must hold at least its size, and the root recomputed at its
size must equal its root; otherwise the problem is "log rolled back".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256 as _sha256
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.engine import Engine

from agentiam import strict_json
from agentiam.audit.canonical_lines import CANONICAL_EVENT_LINE, check_canonical_lines
from agentiam.audit.chain import (
    GENESIS_CHAIN_HASH,
    b64url,
    hash_from_b64url,
    next_chain_hash,
)
from agentiam.audit.errors import AuditError, AuditEventError, ProofError, TreeHeadError
from agentiam.audit.events import AuditEvent
from agentiam.audit.log import tree_head_from_row
from agentiam.audit.merkle import (
    HASH_SIZE,
    CompactRange,
    empty_root,
    leaf_hash,
    node_hash,
)
from agentiam.audit.tables import audit_events, tree_heads
from agentiam.audit.tree import NODE_LEVEL, perfect_pieces
from agentiam.audit.tree_head import TreeHead, verify_tree_head
from agentiam.jose import KeyLookup

_BATCH = 10_000
# The maximum number of canonical export lines checked in one call.  The lines
# of a run stay in memory until it is checked.
_RUN_LINES = 1024


@dataclass(frozen=True, slots=True)
class Problem:
    """One integrity failure: where it is and what is wrong."""

    position: str
    message: str

    def __str__(self) -> str:
        return f"{self.position}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """The result of a verification: sizes checked, problems and warnings found.

    ``covered`` is the largest size of a verified tree head, stored or trusted,
    and ``signed`` is true when there is one; events at or after ``seq``
    ``covered`` are covered by no signed tree head.
    """

    events: int = 0
    tree_heads: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    covered: int = 0
    signed: bool = False

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The problem at the lowest position, the one to investigate first."""
        return self.problems[0] if self.problems else None


def _rows(engine: Engine) -> Iterator[Any]:
    """Yield every event row in seq order, in batches to bound memory."""
    after = -1
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit_events)
                .where(audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(_BATCH)
            ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def _check_columns(row: Any, event: AuditEvent) -> str | None:
    """Return the name of an indexed column that disagrees with the event bytes."""
    expected = {
        "time": event.time,
        "type": event.type,
        "decision": event.decision,
        "human": event.human,
        "grant_id": event.grant_id,
        "agent": event.actors[0] if event.actors else None,
        "task_id": event.task_id,
    }
    for name, value in expected.items():
        if getattr(row, name) != value:
            return name
    return None


def _check_event(row: Any, previous_chain: bytes) -> str | None:
    """Return what is wrong with one row, or ``None``."""
    canonical = bytes(row.canonical)
    leaf = leaf_hash(canonical)
    if bytes(row.leaf_hash) != leaf:
        return "the leaf hash does not match the stored event (event edited)"
    if bytes(row.chain_hash) != next_chain_hash(previous_chain, leaf):
        return (
            "the chain hash does not follow from the previous event "
            "(event edited, inserted, deleted or reordered)"
        )
    try:
        event = AuditEvent.from_dict(json.loads(canonical))
    except (ValueError, AuditEventError) as err:
        return f"the stored event is not a valid audit event: {err}"
    if event.canonical() != canonical:
        return "the stored event is not in canonical form (event edited)"
    column = _check_columns(row, event)
    if column is not None:
        return f"column {column!r} does not match the stored event (row edited)"
    return None


def verify_log(
    engine: Engine,
    keys: KeyLookup,
    *,
    issuer: str | None = None,
    progress: Callable[[int], None] | None = None,
    trusted_heads: Sequence[TreeHead] = (),
) -> VerifyReport:
    """Recompute the chain and the Merkle roots and check them and every tree head.

    Args:
        engine: the database holding the audit tables.
        keys: finds the verification key for a tree head's ``kid``.
        issuer: the expected ``iss`` of tree heads, if it should be checked.
        progress: called with the number of events checked, every 10,000.
        trusted_heads: tree heads kept outside the log (see the module docstring).

    Returns:
        A report; ``report.problems`` lists the first chain problem found (later
        positions cannot be trusted after it), every bad tree head and every
        trusted head that the log contradicts.  Events after the largest verified
        head are a warning in ``report.warnings``: the server signs its newest
        events later.
    """
    report, _ = _verify_rows(
        _rows(engine), _load_heads(engine), keys, issuer, progress, trusted_heads
    )
    problem = _uncovered(report)
    if problem is not None:
        report.warnings.append(problem)
    return report


def verify_rows_for_head(
    rows: Iterable[Any],
    heads: Sequence[TreeHead],
    keys: KeyLookup,
    *,
    issuer: str | None = None,
) -> tuple[VerifyReport, bytes | None]:
    """Verify event rows and tree heads as ``verify_log`` does, before signing.

    ``agentiam audit export`` signs a head over the rows it writes; this check
    keeps it from signing over a log whose chain or stored heads are broken.

    Returns:
        The report, and the Merkle root over every row when ``report.ok``, else
        ``None``.
    """
    report, roots = _verify_rows(rows, heads, keys, issuer, None, ())
    return report, roots.get(report.events) if report.ok else None


def _verify_rows(
    rows: Iterable[Any],
    heads: Sequence[TreeHead],
    keys: KeyLookup,
    issuer: str | None,
    progress: Callable[[int], None] | None,
    trusted_heads: Sequence[TreeHead],
) -> tuple[VerifyReport, dict[int, bytes]]:
    report = VerifyReport()
    report.tree_heads = len(heads)
    sizes = {head.size for head in heads} | {head.size for head in trusted_heads}
    roots = _scan_events(rows, report, sizes, progress)
    _check_heads(report, heads, roots, keys, issuer, trusted_heads)
    return report, roots


def _load_heads(engine: Engine) -> list[TreeHead]:
    with engine.connect() as conn:
        rows = conn.execute(select(tree_heads).order_by(tree_heads.c.id)).all()
    return [tree_head_from_row(row) for row in rows]


def _scan_events(
    rows: Iterable[Any],
    report: VerifyReport,
    head_sizes: set[int],
    progress: Callable[[int], None] | None,
) -> dict[int, bytes]:
    """Check each event in order and return the Merkle root at each head size.

    When every row verifies, the root over all of them is returned as well.
    """
    compact = CompactRange()
    roots = {0: compact.root()} if 0 in head_sizes else {}
    chain = GENESIS_CHAIN_HASH

    for row in rows:
        position = compact.size
        if row.seq != position:
            report.problems.append(
                Problem(
                    f"position {position}",
                    f"expected seq {position}, found seq {row.seq} (events deleted)",
                )
            )
            return roots
        problem = _check_event(row, chain)
        if problem is not None:
            report.problems.append(Problem(f"position {position}", problem))
            return roots

        chain = bytes(row.chain_hash)
        compact.append(bytes(row.leaf_hash))
        report.events = compact.size
        if compact.size in head_sizes:
            roots[compact.size] = compact.root()
        if progress is not None and compact.size % _BATCH == 0:
            progress(compact.size)
    roots[compact.size] = compact.root()
    return roots


def _check_head(
    head: TreeHead,
    roots: dict[int, bytes],
    events: int,
    keys: KeyLookup,
    issuer: str | None,
) -> str | None:
    """Return what is wrong with one stored tree head, or ``None``."""
    # NOTE: a head signed by a key that rotation has since dropped from the key
    # ring fails here as if forged, because its public key is no longer loaded.
    try:
        signed = verify_tree_head(head.signature, keys, issuer=issuer)
    except TreeHeadError as err:
        return f"the signature is invalid (forged tree head): {err}"
    if (signed.size, signed.root, signed.kid) != (head.size, head.root, head.kid):
        return "the stored columns do not match the signed tree head (row edited)"
    if head.size not in roots:
        return (
            f"the log has only {events} verified events, fewer than the signed "
            f"size {head.size} (truncated or broken before it)"
        )
    if roots[head.size] != head.root:
        return (
            f"the recomputed root {b64url(roots[head.size])} differs from the "
            f"signed root {b64url(head.root)} (events edited or reordered)"
        )
    return None


def _check_trusted_head(
    head: TreeHead, roots: dict[int, bytes], events: int
) -> str | None:
    """Return how the log contradicts a head kept outside it, or ``None``."""
    if head.size not in roots:
        return (
            f"log rolled back: the log has {events} verified events, fewer than "
            f"the trusted tree head's size {head.size}"
        )
    if roots[head.size] != head.root:
        return (
            f"log rolled back: the root recomputed at size {head.size} is "
            f"{b64url(roots[head.size])}, not the trusted root {b64url(head.root)} "
            f"(the log of {events} events is inconsistent with the trusted head)"
        )
    return None


def load_trusted_head(text: str, keys: KeyLookup, *, issuer: str | None) -> TreeHead:
    """Verify a tree head given as a compact JWS or as ``TreeHead.to_dict`` JSON.

    Raises:
        TreeHeadError: the text is neither, or its signature or claims are invalid.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text)["signature"])
        except (ValueError, KeyError, TypeError) as err:
            raise TreeHeadError(
                "Trusted tree head JSON has no 'signature' member."
            ) from err
    return verify_tree_head(text, keys, issuer=issuer)


@dataclass(slots=True)
class _ExportScan:
    """The state of one pass over an export: the chain, the tree and the heads.

    A head can come after the events it covers, so every leaf hash (32 bytes an
    event) is kept, and ``levels[k]`` contains the root of every complete, aligned
    subtree of ``2**(NODE_LEVEL + k)`` leaves, in order.  They give the root at
    any size afterwards without a second pass (``root_at``).
    """

    report: VerifyReport
    progress: Callable[[int], None] | None
    chain: bytes = GENESIS_CHAIN_HASH
    leaves: bytearray = field(default_factory=bytearray)
    levels: list[bytearray] = field(default_factory=list)
    heads: list[TreeHead] = field(default_factory=list)
    broken: bool = False
    # A seq above the expected one: the position, the seq found, and whether the
    # expected seq comes later in the file (reordered) or never (deleted).
    gap: tuple[int, int] | None = None
    gap_filled: bool = False

    def fail(self, position: int, message: str) -> None:
        self.report.problems.append(Problem(f"position {position}", message))
        self.broken = True

    def note_seq(self, seq: int) -> None:
        """Note the seq of an event line read after the scan broke."""
        if self.gap is not None and seq == self.gap[0]:
            self.gap_filled = True

    def finish(self) -> None:
        """Report a seq gap, now that the rest of the file has been read."""
        if self.gap is None:
            return
        position, seq = self.gap
        if self.gap_filled:
            message = (
                f"expected seq {position}, found seq {seq}; seq {position} comes "
                "later (events reordered)"
            )
        else:
            message = f"expected seq {position}, found seq {seq} (events deleted)"
        self.report.problems.append(Problem(f"position {position}", message))

    def add(
        self, seq: int, leaf: bytes, chain_text: str, leaf_text: str | None
    ) -> None:
        """Check one event's hashes, given its leaf hash, and add it to the tree.

        ``leaf_text`` is the line's leaf hash, or ``None`` when the caller has
        already compared it with ``leaf``.
        """
        position = self.report.events
        if seq < position:
            # Every seq below the position has been read and verified already.
            self.fail(
                position,
                f"expected seq {position}, found seq {seq} again (event duplicated)",
            )
            return
        if seq > position:
            self.gap = (position, seq)
            self.broken = True
            return
        if leaf_text is not None and b64url(leaf) != leaf_text:
            self.fail(
                position,
                "the leaf hash does not match the stored event (event edited)",
            )
            return
        chain = _sha256(self.chain + leaf).digest()
        if b64url(chain) != chain_text:
            self.fail(
                position,
                "the chain hash does not follow from the previous event "
                "(event edited, inserted, deleted or reordered)",
            )
            return
        self.extend(leaf, chain)

    def extend(self, leaves: bytes, chain: bytes) -> None:
        """Add verified leaf hashes, and the chain hash of the last one."""
        before = self.report.events
        self.chain = chain
        self.append_leaves(leaves)
        self.report.events = after = len(self.leaves) // HASH_SIZE
        if self.progress is not None:
            for size in range(before - before % _BATCH + _BATCH, after + 1, _BATCH):
                self.progress(size)

    def append_leaves(self, leaves: bytes) -> None:
        """Add leaf hashes and the subtree roots of ``NODE_LEVEL`` they complete."""
        stored = self.leaves
        first = len(stored) // _BLOCK_BYTES
        stored += leaves
        for block in range(first, len(stored) // _BLOCK_BYTES):
            start = block * _BLOCK_BYTES
            self._add_node(
                0, _perfect_root(bytes(stored[start : start + _BLOCK_BYTES]))
            )

    def _add_node(self, index: int, value: bytes) -> None:
        # A node that makes its row's count even is a right child.  It and its
        # left sibling give the parent, which goes one row up the same way.
        levels = self.levels
        while True:
            if index == len(levels):
                levels.append(bytearray())
            row = levels[index]
            row += value
            if len(row) // HASH_SIZE % 2:
                return
            value = _sha256(b"\x01" + row[-2 * HASH_SIZE :]).digest()
            index += 1

    def root_at(self, size: int) -> bytes:
        """Return the root of the first ``size`` verified leaves (``size >= 1``)."""
        pieces = [self._piece(level, low) for level, low in perfect_pieces(0, size)]
        result = pieces[-1]
        for value in reversed(pieces[:-1]):
            result = node_hash(value, result)
        return result

    def _piece(self, level: int, low: int) -> bytes:
        if level >= NODE_LEVEL:
            offset = (low >> level) * HASH_SIZE
            return bytes(self.levels[level - NODE_LEVEL][offset : offset + HASH_SIZE])
        data = bytes(self.leaves[low * HASH_SIZE : (low + (1 << level)) * HASH_SIZE])
        return _perfect_root(data)


# Leaf hashes under one subtree of ``NODE_LEVEL``, in bytes.
_BLOCK_BYTES: Final = HASH_SIZE << NODE_LEVEL


def _perfect_root(data: bytes) -> bytes:
    """Return the root over ``2**k`` leaf hashes joined in ``data`` (RFC 9162)."""
    # Each pair of adjacent hashes is one node input after the 0x01 prefix.
    while len(data) > HASH_SIZE:
        data = b"".join(
            [
                _sha256(b"\x01" + data[i : i + 2 * HASH_SIZE]).digest()
                for i in range(0, len(data), 2 * HASH_SIZE)
            ]
        )
    return data


def verify_export(
    lines: Iterable[str],
    keys: KeyLookup,
    *,
    issuer: str | None = None,
    progress: Callable[[int], None] | None = None,
    trusted_heads: Sequence[TreeHead] = (),
) -> VerifyReport:
    """Verify a JSON-lines export like ``verify_log`` verifies the database.

    The lines are read once, as they come.  An event line in the canonical
    layout (``canonical_lines.CANONICAL_EVENT_LINE``) has its event bytes hashed
    exactly as they stand in the file; those same bytes are then parsed and
    checked as an event, so what is hashed is what is checked.  Such lines are
    checked in runs of up to ``_RUN_LINES``, and the first line of a run that
    fails a check is checked again alone to name the failure.  Any other event
    line (an export whose event JSON is not in canonical form) is parsed
    strictly, and its event is encoded canonically again before hashing.

    Raises:
        AuditError: a line is not valid JSON of the export format (the position
            is named), so the file cannot be checked at all.
    """
    report = VerifyReport()
    scan = _ExportScan(report, progress)
    seen = _scan_lines(lines, scan)
    if not seen:
        raise AuditError("The export is empty; expected a header line first.")
    scan.finish()

    report.tree_heads = len(scan.heads)
    roots: dict[int, bytes] = {}
    for head in (*scan.heads, *trusted_heads):
        if head.size not in roots and 1 <= head.size <= report.events:
            roots[head.size] = scan.root_at(head.size)
    if 0 in {head.size for head in (*scan.heads, *trusted_heads)}:
        roots[0] = empty_root()
    _check_heads(report, scan.heads, roots, keys, issuer, trusted_heads)
    if not report.signed:
        report.problems.append(
            Problem(
                "position 0",
                f"the export holds no verified signed tree head, so its "
                f"{report.events} events from seq 0 are covered by none (tree "
                "heads dropped or forged)",
            )
        )
    else:
        problem = _uncovered(report)
        if problem is not None:
            report.problems.append(problem)
    return report


def _uncovered(report: VerifyReport) -> Problem | None:
    """Return the events that no verified tree head covers, or ``None``."""
    if report.covered >= report.events:
        return None
    count = report.events - report.covered
    if report.covered == 0:
        return Problem(
            "position 0",
            f"{count} events from seq 0 are covered by no signed tree head",
        )
    return Problem(
        f"position {report.covered}",
        f"{count} events after seq {report.covered - 1} are covered by no "
        "signed tree head",
    )


def _read_header(line: str) -> None:
    try:
        data = json.loads(line)
        if (
            not isinstance(data, dict)
            or data.get("kind") != "header"
            or data.get("version") != 1
        ):
            raise ValueError(f"expected an export header of version 1: {line!r}")
    except (ValueError, TypeError) as err:
        raise AuditError(f"Export line 1 is invalid: {err}") from err


def _scan_lines(lines: Iterable[str], scan: _ExportScan) -> bool:
    """Check the header and then every line; ``False`` if none follows the header.

    Consecutive canonical event lines are checked as runs while the scan is not
    broken.  Any other line ends a run and is checked alone.
    """
    lines = iter(lines)
    header = next(lines, None)
    if header is None:
        return False
    _read_header(header)

    seen = False
    run: list[re.Match[str]] = []
    number = 1
    match_line = CANONICAL_EVENT_LINE.match
    for number, line in enumerate(lines, start=2):
        match = match_line(line)
        if match is not None and not scan.broken:
            run.append(match)
            if len(run) == _RUN_LINES:
                _read_canonical_run(number - _RUN_LINES + 1, run, scan)
                run, seen = [], True
            continue
        if run:
            _read_canonical_run(number - len(run), run, scan)
            run, seen = [], True
        seen = _read_any_line(number, line, match, scan) or seen
    if run:
        _read_canonical_run(number - len(run) + 1, run, scan)
        seen = True
    return seen


def _read_canonical_run(
    start: int, run: Sequence[re.Match[str]], scan: _ExportScan
) -> None:
    """Check canonical event lines from line number ``start`` on, as one run."""
    while run and not scan.broken:
        count, leaves, chain = check_canonical_lines(
            run, scan.report.events, scan.chain
        )
        scan.extend(leaves, chain)
        if count == len(run):
            return
        # The line after the lines that passed gets the per-line checks, which
        # name its problem, or accept it if only its layout is unusual.
        _read_any_line(start + count, run[count].string, run[count], scan)
        start, run = start + count + 1, run[count + 1 :]
    for number, match in enumerate(run, start=start):
        _read_any_line(number, match.string, match, scan)


def _read_any_line(
    number: int, line: str, match: re.Match[str] | None, scan: _ExportScan
) -> bool:
    """Check one line after the header; ``False`` if it is blank."""
    if match is not None and _read_canonical_event(number, line, match, scan):
        return True
    if line.strip():
        _read_line(number, line, scan)
        return True
    return False


def _read_canonical_event(
    number: int, line: str, match: re.Match[str], scan: _ExportScan
) -> bool:
    """Check an event line in the canonical layout; ``False`` if it is not one.

    The event bytes are hashed first: when they match the line's leaf hash they
    are the bytes the server hashed, and they are parsed and checked as an event.
    When they do not, the line is left to the strict parser, which re-encodes the
    event, so an export written with other JSON formatting still verifies.
    """
    end = len(line) - 1 if line.endswith("}\n") else len(line)
    if line[end - 1] != "}":
        return False
    text = line[match.end() : end - 1]
    leaf = _sha256(b"\x00" + text.encode("utf-8")).digest()
    seq, leaf_text, chain_text = match.groups()
    if scan.broken or b64url(leaf) != leaf_text:
        return False
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("the event is not a JSON object")
        AuditEvent.from_dict(data)
    except (ValueError, TypeError, AuditEventError) as err:
        raise AuditError(f"Export line {number} is invalid: {err}") from err
    scan.add(int(seq), leaf, chain_text, None)
    return True


def _read_line(number: int, line: str, scan: _ExportScan) -> None:
    try:
        data = strict_json.loads(line, what="export line")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        kind = data["kind"]
        if kind == "event":
            seq, leaf_text, chain_text, canonical = _export_event(data)
            if scan.broken:
                scan.note_seq(seq)
            else:
                scan.add(seq, leaf_hash(canonical), chain_text, leaf_text)
        elif kind == "tree_head":
            scan.heads.append(_export_head(data))
        else:
            raise ValueError(f"unknown kind {kind!r}")
    except (ValueError, KeyError, TypeError, ProofError, AuditEventError) as err:
        raise AuditError(f"Export line {number} is invalid: {err}") from err


def _export_event(data: dict[str, Any]) -> tuple[int, str, str, bytes]:
    event = AuditEvent.from_dict(data["event"])
    seq = data["seq"]
    if type(seq) is not int:
        raise ValueError(f"seq {seq!r} is not an integer")
    # Decoding checks the form of each hash; the scan compares the text.
    leaf_text, chain_text = data["leaf_hash"], data["chain_hash"]
    hash_from_b64url(leaf_text, name="leaf_hash")
    hash_from_b64url(chain_text, name="chain_hash")
    return seq, leaf_text, chain_text, event.canonical()


def _check_heads(
    report: VerifyReport,
    heads: Sequence[TreeHead],
    roots: dict[int, bytes],
    keys: KeyLookup,
    issuer: str | None,
    trusted_heads: Sequence[TreeHead],
) -> None:
    # Only a head that verifies covers events; a forged one covers none.
    covered = -1
    for number, head in enumerate(heads, start=1):
        problem = _check_head(head, roots, report.events, keys, issuer)
        if problem is not None:
            report.problems.append(
                Problem(f"tree head {number} (size {head.size})", problem)
            )
        else:
            covered = max(covered, head.size)
    for number, head in enumerate(trusted_heads, start=1):
        problem = _check_trusted_head(head, roots, report.events)
        if problem is not None:
            report.problems.append(
                Problem(f"trusted tree head {number} (size {head.size})", problem)
            )
        else:
            covered = max(covered, head.size)
    report.covered = max(covered, 0)
    report.signed = covered >= 0


def _export_head(data: dict[str, Any]) -> TreeHead:
    return TreeHead(
        size=int(data["tree_size"]),
        root=hash_from_b64url(data["root_hash"], name="root_hash"),
        timestamp=float(data["timestamp"]),
        kid=str(data["kid"]),
        signature=str(data["signature"]),
        version=int(data["version"]),
    )
