"""Offline verification of a file written by ``agentiam audit export``.

``verify_export`` runs the checks of ``verify.verify_log`` over the file, so an
auditor needs only the file and the server's public keys.  It reads the lines
once, as they come.  The tree heads follow the events in an export, so it keeps
every leaf hash (32 bytes an event, 32 MB for a million) and the subtree roots
above ``NODE_LEVEL`` to compute each head's root at the end.

An export with no verified signed tree head, or with events after the largest
one, fails, because only a signature binds the events (``verify_report`` states
the rule).  ``agentiam audit export`` signs a head over every event it writes, so
an honest export is always covered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from hashlib import sha256 as _sha256
from typing import Any, Final

from agentiam import strict_json
from agentiam.audit._rfc8785 import loads
from agentiam.audit.canonical_lines import CANONICAL_EVENT_LINE, check_canonical_lines
from agentiam.audit.chain import GENESIS_CHAIN_HASH, b64url, hash_from_b64url
from agentiam.audit.errors import AuditError, AuditEventError, ProofError
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import HASH_SIZE, empty_root, leaf_hash, node_hash
from agentiam.audit.tree import NODE_LEVEL, perfect_pieces
from agentiam.audit.tree_head import TreeHead
from agentiam.audit.verify_report import (
    HEAD_LINE_EDITED,
    Problem,
    VerifyReport,
    check_heads,
    event_count,
    uncovered_problem,
)
from agentiam.jose import KeyLookup

#: The ``version`` of the header line that ``agentiam audit export`` writes.
EXPORT_VERSION: Final = 1

# ``progress`` is called every ``_BATCH`` events, as ``verify.verify_log`` calls it.
_BATCH = 10_000
# The maximum number of canonical export lines checked in one call.  The lines
# of a run stay in memory until it is checked.
_RUN_LINES = 1024


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
    lines: Iterable[str] | Iterable[bytes],
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

    Lines may be given as text or as UTF-8 bytes.

    Raises:
        AuditError: a line is not UTF-8 or not valid JSON of the export format
            (the position is named), so the file cannot be checked at all.
    """
    report = VerifyReport()
    scan = _ExportScan(report, progress)
    seen = _scan_lines(_text_lines(lines), scan)
    if not seen:
        raise AuditError(
            "The export has a header line but no events and no tree heads; "
            "export the log again with 'agentiam audit export'."
        )
    scan.finish()

    # A repeated head line is counted once, not rejected.  Every member of it is
    # signed, and a log can store two equal heads because an EdDSA signature is
    # deterministic (RFC 8032): two heads signed at one size in one clock tick
    # are equal, so an honest export can repeat a line.
    report.tree_heads = len(set(scan.heads))
    roots: dict[int, bytes] = {}
    for head in (*scan.heads, *trusted_heads):
        if head.size not in roots and 1 <= head.size <= report.events:
            roots[head.size] = scan.root_at(head.size)
    if 0 in {head.size for head in (*scan.heads, *trusted_heads)}:
        roots[0] = empty_root()
    check_heads(
        report,
        scan.heads,
        roots,
        keys,
        issuer,
        trusted_heads,
        edited_problem=HEAD_LINE_EDITED,
    )
    if not report.signed:
        report.problems.append(
            Problem(
                "position 0",
                f"the export holds no verified signed tree head, so its "
                f"{event_count(report.events)} from seq 0 "
                f"{'is' if report.events == 1 else 'are'} covered by none (tree "
                "heads dropped or forged)",
            )
        )
    else:
        problem = uncovered_problem(report)
        if problem is not None:
            report.problems.append(problem)
    return report


def _text_lines(lines: Iterable[str | bytes]) -> Iterator[str]:
    """Yield each line as text; a line or a file that is not UTF-8 raises.

    Lines given as bytes are decoded one by one, so the error names the line.  A
    text file decodes ahead of the line it returns, so an error from it names
    the first line it could be on.

    Raises:
        AuditError: a line is not valid UTF-8.
    """
    number = 0
    iterator = iter(lines)
    while True:
        try:
            line = next(iterator, None)
        except UnicodeDecodeError as err:
            raise AuditError(
                f"Export line {number + 1} or a later line is not valid UTF-8: {err}"
            ) from err
        if line is None:
            return
        number += 1
        if isinstance(line, bytes | bytearray):
            try:
                line = bytes(line).decode("utf-8")
            except UnicodeDecodeError as err:
                raise AuditError(
                    f"Export line {number} is not valid UTF-8: {err}"
                ) from err
        yield line


def _read_header(line: str) -> None:
    """Check the first line: exactly ``{"kind": "header", "version": 1}``.

    Raises:
        AuditError: the line is not strict JSON (``strict_json.loads``), is not
            a header, lacks or adds a member, or has another version.
    """
    try:
        data = strict_json.loads(line, what="export line")
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if "kind" in data and data["kind"] != "header":
            raise ValueError(f"expected kind 'header', found {data['kind']!r}")
        _check_members(data, _HEADER_MEMBERS)
        version = data["version"]
        if type(version) is not int:
            raise ValueError(f"version {version!r} is not an integer")
        if version != EXPORT_VERSION:
            raise ValueError(
                f"version {version} is not supported; expected {EXPORT_VERSION}"
            )
    except ValueError as err:
        raise AuditError(f"Export line 1 is invalid: {err}") from err


def _scan_lines(lines: Iterable[str], scan: _ExportScan) -> bool:
    """Check the header and then every line; ``False`` if none follows the header.

    Consecutive canonical event lines are checked as runs while the scan is not
    broken.  Any other line ends a run and is checked alone.

    Raises:
        AuditError: there is no line at all, or a line is invalid.
    """
    lines = iter(lines)
    header = next(lines, None)
    if header is None:
        raise AuditError("The export is empty; expected a header line first.")
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
        data = loads(text)
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


# The members of each kind of line, as the export writes them.
_HEADER_MEMBERS: Final = frozenset({"kind", "version"})
_EVENT_MEMBERS: Final = frozenset({"kind", "seq", "leaf_hash", "chain_hash", "event"})
_HEAD_MEMBERS: Final = frozenset(
    {"kind", "tree_size", "root_hash", "timestamp", "kid", "signature", "version"}
)


def _check_members(data: dict[str, Any], members: frozenset[str]) -> None:
    """Raise for a member that the line's kind lacks or does not define.

    A member the format does not define is covered by no hash or signature, so
    a verified export contains none.
    """
    if data.keys() != members:
        missing = sorted(members - data.keys())
        if missing:
            raise ValueError(f"missing member {missing[0]!r}")
        unknown = sorted(data.keys() - members)
        raise ValueError(f"unknown member {unknown[0]!r}")


def _export_event(data: dict[str, Any]) -> tuple[int, str, str, bytes]:
    _check_members(data, _EVENT_MEMBERS)
    event = AuditEvent.from_dict(data["event"])
    seq = data["seq"]
    if type(seq) is not int:
        raise ValueError(f"seq {seq!r} is not an integer")
    # Decoding checks the form of each hash; the scan compares the text.
    leaf_text, chain_text = data["leaf_hash"], data["chain_hash"]
    hash_from_b64url(leaf_text, name="leaf_hash")
    hash_from_b64url(chain_text, name="chain_hash")
    return seq, leaf_text, chain_text, event.canonical()


def _export_head(data: dict[str, Any]) -> TreeHead:
    _check_members(data, _HEAD_MEMBERS)
    size, timestamp, version = data["tree_size"], data["timestamp"], data["version"]
    if type(size) is not int:
        raise ValueError(f"tree_size {size!r} is not an integer")
    if type(timestamp) is not float and type(timestamp) is not int:
        raise ValueError(f"timestamp {timestamp!r} is not a number")
    if type(version) is not int:
        raise ValueError(f"version {version!r} is not an integer")
    for name in ("kid", "signature"):
        if type(data[name]) is not str:
            raise ValueError(f"{name} {data[name]!r} is not a string")
    return TreeHead(
        size=size,
        root=hash_from_b64url(data["root_hash"], name="root_hash"),
        timestamp=float(timestamp),
        kid=data["kid"],
        signature=data["signature"],
        version=version,
    )
