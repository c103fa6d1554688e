"""SPIFFE IDs and trust domains, validated as the SPIFFE-ID standard requires.

A SPIFFE ID is ``spiffe://<trust domain><path>``. The scheme is lowercase
``spiffe``. The trust domain contains only lowercase letters, digits, ``.``, ``-``
and ``_``, so a port, userinfo or uppercase letter is invalid. Each path segment
contains only letters, digits, ``.``, ``-`` and ``_``, and the path has no empty,
``.`` or ``..`` segment, no trailing ``/``, no percent-encoding, no query and no
fragment. An ID is at most 2048 bytes and its trust domain at most 255 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentiam.spiffe.errors import SPIFFEIDError

SCHEME_PREFIX = "spiffe://"
MAX_ID_LENGTH = 2048
MAX_TRUST_DOMAIN_LENGTH = 255

_TRUST_DOMAIN_RE = re.compile(r"[a-z0-9._-]+")
_SEGMENT_RE = re.compile(r"[a-zA-Z0-9._-]+")


def _id_error(text: str, rule: str) -> SPIFFEIDError:
    return SPIFFEIDError(f"Invalid SPIFFE ID {text!r}: {rule}")


def _trust_domain_rule(name: str) -> str | None:
    """Return the rule that ``name`` breaks as a trust domain, or None if valid."""
    if not name:
        return "trust domain is missing"
    if "@" in name:
        return "trust domain must not contain userinfo"
    if ":" in name:
        return "trust domain must not contain a port"
    if _TRUST_DOMAIN_RE.fullmatch(name) is None:
        if _TRUST_DOMAIN_RE.fullmatch(name.lower()) is not None:
            return "trust domain must be lowercase"
        return (
            "trust domain may contain only lowercase letters, digits, '.', '-' and '_'"
        )
    if len(name) > MAX_TRUST_DOMAIN_LENGTH:
        return f"trust domain is longer than {MAX_TRUST_DOMAIN_LENGTH} bytes"
    return None


def _path_rule(path: str) -> str | None:
    """Return the rule that ``path`` breaks as a SPIFFE ID path, or None if valid."""
    if not path:
        return None
    if "%" in path:
        return "path must not contain percent-encoding"
    if path.endswith("/"):
        return "path must not end with '/'"
    for segment in path[1:].split("/"):
        if not segment:
            return "path must not contain empty segments"
        if segment in (".", ".."):
            return "path must not contain '.' or '..' segments"
        if _SEGMENT_RE.fullmatch(segment) is None:
            return "path segments may contain only letters, digits, '.', '-' and '_'"
    return None


@dataclass(frozen=True, slots=True)
class TrustDomain:
    """A SPIFFE trust domain name, such as ``example.org``."""

    name: str

    def __post_init__(self) -> None:
        rule = _trust_domain_rule(self.name)
        if rule is not None:
            raise SPIFFEIDError(f"Invalid trust domain {self.name!r}: {rule}")

    @classmethod
    def parse(cls, text: str) -> TrustDomain:
        """Parse a trust domain name.

        Raises:
            SPIFFEIDError: the name is malformed. The message names the rule.
        """
        return cls(text)

    def id(self) -> SPIFFEID:
        """Return the SPIFFE ID of the trust domain itself (an empty path)."""
        return SPIFFEID(self, "")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class SPIFFEID:
    """A parsed SPIFFE ID: a trust domain and a path (empty or starting with ``/``)."""

    trust_domain: TrustDomain
    path: str

    def __post_init__(self) -> None:
        if self.path and not self.path.startswith("/"):
            raise _id_error(str(self), "path must start with '/'")
        rule = _path_rule(self.path)
        if rule is not None:
            raise _id_error(str(self), rule)
        if len(str(self).encode()) > MAX_ID_LENGTH:
            raise _id_error(str(self), f"ID is longer than {MAX_ID_LENGTH} bytes")

    @classmethod
    def parse(cls, text: str) -> SPIFFEID:
        """Parse and validate a SPIFFE ID.

        Raises:
            SPIFFEIDError: the ID is malformed. The message names the ID and rule.
        """
        if not isinstance(text, str):
            raise SPIFFEIDError(f"Invalid SPIFFE ID {text!r}: must be a string")
        if not text:
            raise _id_error(text, "ID must not be empty")
        if len(text.encode()) > MAX_ID_LENGTH:
            raise _id_error(text, f"ID is longer than {MAX_ID_LENGTH} bytes")
        if not text.startswith(SCHEME_PREFIX):
            raise _id_error(text, "scheme must be 'spiffe://' in lowercase")

        # A query or fragment is named before the character rules run, because
        # '?' and '#' would otherwise only show up as invalid characters.
        if "?" in text:
            raise _id_error(text, "ID must not contain a query")
        if "#" in text:
            raise _id_error(text, "ID must not contain a fragment")

        rest = text[len(SCHEME_PREFIX) :]
        name, slash, path = rest.partition("/")
        path = slash + path
        rule = _trust_domain_rule(name) or _path_rule(path)
        if rule is not None:
            raise _id_error(text, rule)
        return cls(TrustDomain(name), path)

    def segments(self) -> tuple[str, ...]:
        """Return the path segments, empty for a trust domain ID."""
        if not self.path:
            return ()
        return tuple(self.path[1:].split("/"))

    def member_of(self, trust_domain: TrustDomain) -> bool:
        """Return whether this ID belongs to ``trust_domain``."""
        return self.trust_domain == trust_domain

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain.name}{self.path}"
