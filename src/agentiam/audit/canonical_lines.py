"""Batch checks of export event lines in the canonical layout.

``agentiam audit export`` writes an event line as ``CANONICAL_EVENT_LINE``, then
the event's canonical bytes and the closing brace, so a verifier can hash the
event bytes as they are in the file.  ``check_canonical_lines`` checks a run of
such lines in one call.  For each line it checks the seq, the leaf hash
SHA-256(0x00 || event bytes) (RFC 9162 section 2.1.1), the chain hash and that
the bytes parse as JSON and build a valid ``AuditEvent``.  It then compares all
the hashes with the line's base64url text at once.

It only confirms lines.  It returns how many lines from the first pass every
check, and the caller checks the next line with the per-line path, which finds
and names its failure.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from hashlib import sha256
from typing import Final

from agentiam.audit._rfc8785 import DECODER
from agentiam.audit.events import AuditEvent

# The start of an event line as the export writes it when the event's JSON is
# its canonical bytes (see ``queries.event_to_json``).
CANONICAL_EVENT_LINE: Final = re.compile(
    r'\{"kind":"event","seq":(0|[1-9][0-9]{0,17}),'
    r'"leaf_hash":"([A-Za-z0-9_-]{43})","chain_hash":"([A-Za-z0-9_-]{43})",'
    r'"event":'
)

_LEAF_PREFIX: Final = b"\x00"
_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def check_canonical_lines(
    matches: Sequence[re.Match[str]], position: int, chain: bytes
) -> tuple[int, bytes, bytes]:
    """Check canonical event lines that should extend the log at ``position``.

    Args:
        matches: ``CANONICAL_EVENT_LINE`` matched at the start of each line.
        position: the seq that the first line must have.
        chain: the chain hash of the event before the first line.

    Returns:
        How many lines from the first pass every check, their leaf hashes joined
        in order, and the chain hash of the last of them (``chain`` if none).
    """
    leaves: list[bytes] = []
    chains: list[bytes] = []
    previous = chain
    # ``raw_decode`` parses one JSON value from the start of a string and returns
    # where the value ends.
    decode = DECODER.raw_decode
    from_dict = AuditEvent.from_dict

    for match in matches:
        line = match.string
        if line.endswith("}\n"):
            text = line[match.end() : -2]
        elif line.endswith("}"):
            text = line[match.end() : -1]
        else:
            break
        if int(match.group(1)) != position + len(leaves):
            break
        try:
            data, end = decode(text)
            if end != len(text) or type(data) is not dict:
                break
            from_dict(data)
        except Exception:
            # Whatever failed, the per-line path finds it again and reports it.
            break
        leaf = sha256(_LEAF_PREFIX + text.encode("utf-8")).digest()
        previous = sha256(previous + leaf).digest()
        leaves.append(leaf)
        chains.append(previous)

    count = min(
        _matching(leaves, [match.group(2) for match in matches[: len(leaves)]]),
        _matching(chains, [match.group(3) for match in matches[: len(chains)]]),
    )
    return count, b"".join(leaves[:count]), chains[count - 1] if count else chain


def _matching(hashes: list[bytes], texts: list[str]) -> int:
    """Return how many hashes from the first equal the base64url texts."""
    # A zero byte after each 32-byte hash makes 33 bytes, whose base64 is 44
    # characters: the hash's 43 unpadded characters and then "A".
    data = b"\x00".join(hashes) + b"\x00"
    encoded = binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE)
    expected = "A".join(texts) + "A"
    if encoded.decode("ascii") == expected or not hashes:
        return len(hashes)
    return next(
        index
        for index, text in enumerate(texts)
        if encoded[44 * index : 44 * index + 43].decode("ascii") != text
    )
