"""Audit pseudonyms: format, key handling and the validator's view of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.pseudonyms import AuditPseudonyms, load_or_create_hmac_key
from agentiam.audit.tables import audit_hmac_keys
from agentiam.keys.errors import KEKError

KEK = bytes(range(32))
_FORMAT = re.compile(r"^h1:[A-Za-z0-9_-]{43}$")


def test_pseudonym_format_and_stability() -> None:
    pseudonyms = AuditPseudonyms(bytes(32))
    first = pseudonyms.pseudonym("sid", "abc")
    assert _FORMAT.match(first)
    assert pseudonyms.pseudonym("sid", "abc") == first
    assert pseudonyms.pseudonym("dpop_jti", "abc") != first
    assert AuditPseudonyms(bytes([1]) * 32).pseudonym("sid", "abc") != first


def test_pseudonym_rejects_unknown_kind_and_empty_value() -> None:
    pseudonyms = AuditPseudonyms(bytes(32))
    with pytest.raises(AuditError, match="Unknown pseudonym kind 'token'"):
        pseudonyms.pseudonym("token", "abc")
    with pytest.raises(AuditError, match=r"The sid to pseudonymize is empty\."):
        pseudonyms.pseudonym("sid", "")


def test_pseudonyms_repr_hides_key() -> None:
    assert repr(AuditPseudonyms(b"k" * 32)) == "AuditPseudonyms(<key hidden>)"


def test_hmac_key_is_created_once_and_encrypted(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    audit_hmac_keys.create(engine)
    try:
        key = load_or_create_hmac_key(engine, KEK, now=1.0)
        assert load_or_create_hmac_key(engine, KEK, now=2.0) == key
        with engine.connect() as conn:
            stored = conn.execute(audit_hmac_keys.select()).all()
        assert len(stored) == 1
        assert key not in bytes(stored[0].key)
        with pytest.raises(KEKError):
            load_or_create_hmac_key(engine, bytes(32), now=3.0)
    finally:
        engine.dispose()


def test_event_accepts_pseudonymized_details() -> None:
    pseudonyms = AuditPseudonyms(bytes(32))
    event = AuditEvent(
        type="session.created",
        details={
            "sid": pseudonyms.pseudonym("sid", "abc"),
            "join_token_pseudonym": pseudonyms.pseudonym("join_token", "00ff"),
        },
    )
    assert str(event.details["sid"]).startswith("h1:")
