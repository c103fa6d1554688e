"""The report of an audit log verification and the checks of its tree heads.

``verify.verify_log`` (the database) and ``export_verifier.verify_export`` (an
exported file) both recompute the Merkle root at the size of each tree head and
then call ``check_heads``, which records the result in a ``VerifyReport``.

Every event must be covered by a signed tree head: a head, stored or trusted,
whose signature and root verify and whose size is above the event's ``seq``.
Anyone can recompute the unkeyed leaf and chain hashes, so only a signature binds
the events.  ``uncovered_problem`` names the events after the largest such head.

Both verifiers take ``trusted_heads``: tree heads the auditor kept from earlier,
outside the log.  A log that was cut back or rewritten and then re-signed passes
its own heads, so only an outside head detects it.  The caller verifies the
signature of each trusted head (``load_trusted_head``).  The log must then hold at
least the head's size, and the root recomputed at that size must equal its root,
or the problem is "log rolled back".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentiam.audit.chain import b64url
from agentiam.audit.errors import TreeHeadError
from agentiam.audit.tree_head import TreeHead, verify_tree_head
from agentiam.jose import KeyLookup

#: The problem of a stored tree head whose columns differ from its signed claims.
HEAD_ROW_EDITED = "the stored columns do not match the signed tree head (row edited)"
#: The problem of an export's tree head line whose members differ from its
#: signed claims.
HEAD_LINE_EDITED = "the line's members do not match its signed tree head (line edited)"


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


def check_heads(
    report: VerifyReport,
    heads: Sequence[TreeHead],
    roots: dict[int, bytes],
    keys: KeyLookup,
    issuer: str | None,
    trusted_heads: Sequence[TreeHead],
    *,
    edited_problem: str,
) -> None:
    """Check stored and trusted tree heads against the recomputed roots.

    Args:
        report: receives a problem for each head that fails, and the coverage.
        heads: the tree heads stored with the log, in order.
        roots: the recomputed Merkle root at each head size the log reaches.
        keys: finds the verification key for a stored head's ``kid``.
        issuer: the expected ``iss`` of stored heads, if it should be checked.
        trusted_heads: heads kept outside the log, whose signatures the caller
            has verified (``load_trusted_head``).
        edited_problem: the problem of a stored head whose size, root,
            timestamp, kid or version differs from its signed claims:
            ``HEAD_ROW_EDITED`` or ``HEAD_LINE_EDITED``.
    """
    # Only a head that verifies covers events; a forged one covers none.
    covered = -1
    for number, head in enumerate(heads, start=1):
        problem = _check_head(head, roots, report.events, keys, issuer, edited_problem)
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


def _check_head(
    head: TreeHead,
    roots: dict[int, bytes],
    events: int,
    keys: KeyLookup,
    issuer: str | None,
    edited_problem: str,
) -> str | None:
    """Return what is wrong with one stored tree head, or ``None``."""
    # NOTE: a head signed by a key that rotation has since dropped from the key
    # ring fails here as if forged, because its public key is no longer loaded.
    try:
        signed = verify_tree_head(head.signature, keys, issuer=issuer)
    except TreeHeadError as err:
        return f"the signature is invalid (forged tree head): {err}"
    if (signed.size, signed.root, signed.kid, signed.timestamp, signed.version) != (
        head.size,
        head.root,
        head.kid,
        head.timestamp,
        head.version,
    ):
        return edited_problem
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


def uncovered_problem(report: VerifyReport) -> Problem | None:
    """Return the events that no verified tree head covers, or ``None``."""
    if report.covered >= report.events:
        return None
    count = report.events - report.covered
    verb = "is" if count == 1 else "are"
    if report.covered == 0:
        return Problem(
            "position 0",
            f"{event_count(count)} from seq 0 {verb} covered by no signed tree head",
        )
    return Problem(
        f"position {report.covered}",
        f"{event_count(count)} after seq {report.covered - 1} {verb} covered by no "
        "signed tree head",
    )


def event_count(count: int) -> str:
    """Return ``count`` with the noun "event", singular for one: "1 event"."""
    return f"{count} event" if count == 1 else f"{count} events"


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
