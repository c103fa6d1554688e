"""SPIFFE ID and trust domain parsing against the SPIFFE-ID standard's rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentiam.spiffe import (
    SPIFFEID,
    SPIFFEIDError,
    TrustDomain,
    agent_spiffe_id,
    parse_agent_spiffe_id,
)

VALID = [
    "spiffe://example.org",
    "spiffe://example.org/workload",
    "spiffe://example.org/a/b/c",
    "spiffe://trust_domain-1.example/path.with-chars_01",
    "spiffe://example.org/UPPER/Case",
    "spiffe://example.org/...",
    "spiffe://1.2.3.4/ip",
]

INVALID = [
    ("", "ID must not be empty"),
    ("example.org/a", "scheme must be 'spiffe://' in lowercase"),
    ("SPIFFE://example.org/a", "scheme must be 'spiffe://' in lowercase"),
    ("Spiffe://example.org/a", "scheme must be 'spiffe://' in lowercase"),
    ("https://example.org/a", "scheme must be 'spiffe://' in lowercase"),
    ("spiffe:/example.org/a", "scheme must be 'spiffe://' in lowercase"),
    ("spiffe://", "trust domain is missing"),
    ("spiffe:///a", "trust domain is missing"),
    ("spiffe://Example.org/a", "trust domain must be lowercase"),
    ("spiffe://example.org:8080/a", "trust domain must not contain a port"),
    ("spiffe://user@example.org/a", "trust domain must not contain userinfo"),
    ("spiffe://user:pw@example.org/a", "trust domain must not contain userinfo"),
    (
        "spiffe://exa$mple.org/a",
        "trust domain may contain only lowercase letters, digits, '.', '-' and '_'",
    ),
    ("spiffe://example.org/a/", "path must not end with '/'"),
    ("spiffe://example.org/", "path must not end with '/'"),
    ("spiffe://example.org//a", "path must not contain empty segments"),
    ("spiffe://example.org/a//b", "path must not contain empty segments"),
    ("spiffe://example.org/./a", "path must not contain '.' or '..' segments"),
    ("spiffe://example.org/a/..", "path must not contain '.' or '..' segments"),
    ("spiffe://example.org/a%20b", "path must not contain percent-encoding"),
    ("spiffe://example.org/a?x=1", "ID must not contain a query"),
    ("spiffe://example.org/a#frag", "ID must not contain a fragment"),
    (
        "spiffe://example.org/a b",
        "path segments may contain only letters, digits, '.', '-' and '_'",
    ),
    (
        "spiffe://example.org/caf\u00e9",
        "path segments may contain only letters, digits, '.', '-' and '_'",
    ),
    (
        "spiffe://example.org/a:b",
        "path segments may contain only letters, digits, '.', '-' and '_'",
    ),
    ("spiffe://" + "a" * 256, "trust domain is longer than 255 bytes"),
    ("spiffe://example.org/" + "a" * 2030, "ID is longer than 2048 bytes"),
]


@pytest.mark.parametrize("text", VALID)
def test_parse_valid(text: str) -> None:
    assert str(SPIFFEID.parse(text)) == text


@pytest.mark.parametrize(("text", "rule"), INVALID, ids=[rule for _, rule in INVALID])
def test_parse_invalid(text: str, rule: str) -> None:
    with pytest.raises(SPIFFEIDError) as info:
        SPIFFEID.parse(text)
    assert str(info.value) == f"Invalid SPIFFE ID {text!r}: {rule}"


def test_parse_message_example() -> None:
    with pytest.raises(SPIFFEIDError) as info:
        SPIFFEID.parse("spiffe://a/b/")
    assert (
        str(info.value)
        == "Invalid SPIFFE ID 'spiffe://a/b/': path must not end with '/'"
    )


def test_parse_rejects_non_string() -> None:
    with pytest.raises(SPIFFEIDError):
        SPIFFEID.parse(42)  # type: ignore[arg-type]


def test_parts() -> None:
    spiffe_id = SPIFFEID.parse("spiffe://example.org/a/b")
    assert spiffe_id.trust_domain == TrustDomain("example.org")
    assert spiffe_id.path == "/a/b"
    assert spiffe_id.segments() == ("a", "b")
    assert spiffe_id.member_of(TrustDomain("example.org"))
    assert not spiffe_id.member_of(TrustDomain("other.org"))


def test_trust_domain_id() -> None:
    assert str(TrustDomain.parse("example.org").id()) == "spiffe://example.org"


def test_trust_domain_invalid() -> None:
    with pytest.raises(SPIFFEIDError) as info:
        TrustDomain.parse("Example.org")
    assert (
        str(info.value)
        == "Invalid trust domain 'Example.org': trust domain must be lowercase"
    )


def test_constructor_validates_path() -> None:
    with pytest.raises(SPIFFEIDError) as info:
        SPIFFEID(TrustDomain("example.org"), "a")
    assert (
        str(info.value)
        == "Invalid SPIFFE ID 'spiffe://example.orga': path must start with '/'"
    )


def test_agent_id_round_trip() -> None:
    spiffe_id = agent_spiffe_id("example.org", "support-orchestrator", "i-1")
    assert str(spiffe_id) == "spiffe://example.org/agent/support-orchestrator/i-1"
    assert parse_agent_spiffe_id(str(spiffe_id)) == (
        spiffe_id,
        "support-orchestrator",
        "i-1",
    )


@pytest.mark.parametrize(
    "text",
    [
        "spiffe://example.org/agent/c",
        "spiffe://example.org/agent/c/i/extra",
        "spiffe://example.org/workload/c/i",
        "spiffe://example.org",
    ],
)
def test_parse_agent_id_wrong_path(text: str) -> None:
    with pytest.raises(SPIFFEIDError) as info:
        parse_agent_spiffe_id(text)
    assert str(info.value) == (
        f"Invalid agent SPIFFE ID {text!r}: path must be '/agent/<class>/<instance>'"
    )


@pytest.mark.parametrize(
    ("agent_class", "instance", "message"),
    [
        (
            "a/b",
            "i",
            "Invalid agent class 'a/b': must be one path segment of letters, "
            "digits, '.', '-' and '_'",
        ),
        (
            "c",
            "",
            "Invalid agent instance '': must be one path segment of letters, "
            "digits, '.', '-' and '_'",
        ),
        ("c", "..", "Invalid agent instance '..': must not be '.' or '..'"),
    ],
)
def test_agent_id_invalid_component(
    agent_class: str, instance: str, message: str
) -> None:
    with pytest.raises(SPIFFEIDError) as info:
        agent_spiffe_id("example.org", agent_class, instance)
    assert str(info.value) == message


def test_agent_id_invalid_trust_domain() -> None:
    with pytest.raises(SPIFFEIDError) as info:
        agent_spiffe_id("EX", "c", "i")
    assert (
        str(info.value) == "Invalid trust domain 'EX': trust domain must be lowercase"
    )


TRUST_DOMAINS = st.from_regex(r"[a-z0-9._-]{1,40}", fullmatch=True)
SEGMENTS = st.from_regex(r"[a-zA-Z0-9._-]{1,20}", fullmatch=True).filter(
    lambda segment: segment not in (".", "..")
)


@given(TRUST_DOMAINS, st.lists(SEGMENTS, max_size=8))
def test_round_trip_valid(trust_domain: str, segments: list[str]) -> None:
    text = f"spiffe://{trust_domain}" + "".join(f"/{s}" for s in segments)
    spiffe_id = SPIFFEID.parse(text)
    assert str(spiffe_id) == text
    assert SPIFFEID.parse(str(spiffe_id)) == spiffe_id
    assert spiffe_id.segments() == tuple(segments)


@given(st.text(max_size=60))
def test_parse_raises_only_spiffe_error(text: str) -> None:
    try:
        spiffe_id = SPIFFEID.parse(text)
    except SPIFFEIDError:
        return
    assert str(spiffe_id) == text
