from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import select

from agentiam.config import load_settings
from agentiam.keys import KEKError, KeyRing
from agentiam.keys.kek import encode_kek, load_kek
from agentiam.keys.tables import signing_keys
from agentiam.storage.engine import create_engine
from agentiam.storage.migrate import upgrade

KEK = encode_kek(b"k" * 32)
OTHER_KEK = encode_kek(b"o" * 32)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={}, overrides={"data_dir": tmp_path / "data"})


@pytest.fixture
def engine(settings):
    settings.data_dir.mkdir(parents=True)
    engine = create_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def open_ring(engine, settings, kek=KEK, clock=None):
    return KeyRing.open(
        engine, settings, clock=clock or Clock(), environ={"AGENTIAM_KEK": kek}
    )


def test_first_start_generates_es256(engine, settings):
    ring = open_ring(engine, settings)
    assert ring.active().alg == "ES256"
    assert [key["kid"] for key in ring.jwks()["keys"]] == [ring.active().kid]
    assert ring.lookup(ring.active().kid) is not None


def test_eddsa_selectable(engine, settings):
    ring = open_ring(engine, settings.replace(signing_alg="EdDSA"))
    assert ring.active().alg == "EdDSA"
    assert ring.jwks()["keys"][0]["crv"] == "Ed25519"


def test_reopen_loads_same_key(engine, settings):
    first = open_ring(engine, settings).active()
    again = open_ring(engine, settings).active()
    assert again.kid == first.kid
    assert again.public_jwk() == first.public_jwk()


def test_private_key_encrypted_at_rest(engine, settings):
    from cryptography.hazmat.primitives import serialization

    key = open_ring(engine, settings).active()
    der = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    scalar = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    engine.dispose()

    raw = settings.sqlite_path.read_bytes()
    wal = settings.sqlite_path.with_name("agentiam.db-wal")
    if wal.exists():
        raw += wal.read_bytes()
    assert der not in raw
    assert scalar not in raw

    with engine.connect() as conn:
        stored = conn.execute(select(signing_keys.c.private_key)).scalar_one()
    assert der not in stored
    assert scalar not in stored


def test_wrong_kek_fails(engine, settings):
    kid = open_ring(engine, settings).active().kid
    with pytest.raises(KEKError) as info:
        open_ring(engine, settings, kek=OTHER_KEK)
    assert f"does not decrypt signing key {kid!r}" in str(info.value)


def test_malformed_kek_fails(engine, settings):
    with pytest.raises(KEKError, match="expected 32 bytes"):
        open_ring(engine, settings, kek="short")


def test_kid_is_associated_data(engine, settings):
    ring = open_ring(engine, settings)
    ring.rotate(1_000_001.0)
    with engine.begin() as conn:
        rows = conn.execute(
            select(signing_keys.c.kid, signing_keys.c.private_key)
        ).all()
        # Swap the ciphertexts of the two keys: decryption must fail.
        (kid_a, blob_a), (kid_b, blob_b) = rows
        conn.execute(
            signing_keys.update()
            .where(signing_keys.c.kid == kid_a)
            .values(private_key=blob_b)
        )
        conn.execute(
            signing_keys.update()
            .where(signing_keys.c.kid == kid_b)
            .values(private_key=blob_a)
        )
    with pytest.raises(KEKError):
        open_ring(engine, settings)


def test_generates_kek_file(settings, caplog):
    settings.data_dir.mkdir(parents=True)
    with caplog.at_level("WARNING", logger="agentiam.keys"):
        kek = load_kek(settings, environ={})
    path = settings.data_dir / "kek"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_kek(settings, environ={}) == kek
    assert "key-encryption key in the data directory" in caplog.text


def test_no_second_kek_once_keys_exist(engine, settings):
    open_ring(engine, settings)
    path = settings.data_dir / "kek"

    with pytest.raises(KEKError) as info:
        KeyRing.open(engine, settings, clock=Clock(), environ={})
    assert f"{str(path)!r} not found" in str(info.value)
    assert "AGENTIAM_KEK" in str(info.value)
    assert not path.exists()


def test_explicit_kek_file_missing(settings, tmp_path):
    with pytest.raises(KEKError, match="not found"):
        load_kek(settings.replace(kek_file=tmp_path / "nope"), environ={})


def test_rotation_overlap_window(engine, settings):
    clock = Clock(1_000_000.0)
    ring = open_ring(engine, settings.replace(key_rotation_overlap=100), clock=clock)
    old = ring.active()

    new = ring.rotate(clock.now)
    assert ring.active().kid == new.kid
    assert {key["kid"] for key in ring.jwks()["keys"]} == {old.kid, new.kid}
    assert ring.lookup(old.kid) is not None

    clock.now += 99
    assert ring.lookup(old.kid) is not None

    clock.now += 1
    assert ring.lookup(old.kid) is None
    assert [key["kid"] for key in ring.jwks()["keys"]] == [new.kid]


def test_rotation_deletes_dropped_rows(engine, settings):
    clock = Clock(1_000_000.0)
    ring = open_ring(engine, settings.replace(key_rotation_overlap=10), clock=clock)
    first = ring.active().kid
    ring.rotate(clock.now)
    clock.now += 20
    ring.rotate(clock.now)
    kids = {info.kid for info in ring.entries()}
    assert first not in kids
    assert len(kids) == 2


def test_other_process_rotation_seen_on_lookup(engine, settings):
    clock = Clock(1_000_000.0)
    server = open_ring(engine, settings, clock=clock)
    cli = open_ring(engine, settings, clock=clock)
    new = cli.rotate(clock.now)
    clock.now += 2
    assert server.lookup(new.kid) is not None
    assert server.active().kid == new.kid
