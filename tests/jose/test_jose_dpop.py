"""DPoP proof creation and verification (RFC 9449) and the replay cache."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentiam.jose import (
    DPoPProofError,
    DPoPReplayError,
    ForbiddenHeaderError,
    InvalidJWKError,
    InvalidSignatureError,
    InvalidTypeError,
    JOSEError,
    MalformedJWSError,
    ReplayCache,
    ReplayCacheFullError,
    SigningKey,
    UnsupportedAlgorithmError,
    access_token_hash,
    create_dpop_proof,
    normalize_htu,
    unverified_header,
    verify_dpop_proof,
    verify_dpop_proof_jkt,
)
from agentiam.jose._base64url import b64url_encode
from agentiam.jose.dpop import _check_time
from agentiam.jose.jws import sign_bytes, sign_jws_with_header

NOW = 1_700_000_000.0
HTU = "https://as.example/token"
KEY = SigningKey.generate("ES256")
OTHER = SigningKey.generate("EdDSA")


def jwk_of(key: SigningKey) -> dict[str, str]:
    jwk = key.public_jwk()
    return {name: jwk[name] for name in jwk if name not in ("kid", "alg", "use")}


def claims(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"jti": "j1", "htm": "POST", "htu": HTU, "iat": int(NOW)}
    result.update(changes)
    return {name: value for name, value in result.items() if value is not None}


def proof_with(payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    if header is None:
        header = {"typ": "dpop+jwt", "jwk": jwk_of(KEY)}
    return sign_jws_with_header(payload, KEY, header)


def verify(proof: str, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {"htm": "POST", "htu": HTU, "now": NOW}
    arguments.update(kwargs)
    arguments.setdefault("replay", ReplayCache(100))
    return verify_dpop_proof(proof, **arguments)


def expect(proof: str, error: type[JOSEError], message: str, **kwargs: Any) -> None:
    with pytest.raises(error) as info:
        verify(proof, **kwargs)
    assert type(info.value) is error
    assert str(info.value) == message


@pytest.mark.parametrize("key", [KEY, OTHER], ids=["ES256", "EdDSA"])
def test_round_trip(key: SigningKey) -> None:
    proof = create_dpop_proof(key, htm="POST", htu=HTU, now=NOW, access_token="tok")
    result = verify(proof, access_token="tok")
    assert result.jkt == key.thumbprint()
    assert result.jwk == jwk_of(key)
    assert result.iat == NOW
    assert result.htm == "POST"
    assert result.htu == HTU
    assert result.ath == access_token_hash("tok")
    assert unverified_header(proof) == {
        "typ": "dpop+jwt",
        "jwk": jwk_of(key),
        "alg": key.alg,
    }


def test_created_proof_drops_query() -> None:
    proof = create_dpop_proof(KEY, htm="GET", htu=HTU + "?a=1#f", now=NOW)
    assert verify(proof, htm="GET").htu == HTU


def test_ath_value() -> None:
    # RFC 9449 section 7.1: base64url SHA-256 of the ASCII access token.
    assert access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == (
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


def test_replay_rejected() -> None:
    cache = ReplayCache(10)
    proof = create_dpop_proof(KEY, htm="POST", htu=HTU, now=NOW)
    jti = json.loads(_payload(proof))["jti"]
    verify(proof, replay=cache)
    expect(
        proof, DPoPReplayError, f"DPoP proof jti {jti!r} was already used", replay=cache
    )


def _payload(proof: str) -> str:
    import base64

    part = proof.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def test_rejected_proof_keeps_jti_unused() -> None:
    cache = ReplayCache(10)
    proof = create_dpop_proof(KEY, htm="POST", htu=HTU, now=NOW)
    with pytest.raises(DPoPProofError):
        verify(proof, htm="GET", replay=cache)
    verify(proof, replay=cache)


def test_wrong_typ() -> None:
    proof = proof_with(claims(), {"typ": "JWT", "jwk": jwk_of(KEY)})
    expect(proof, InvalidTypeError, "JWS typ 'JWT' is not the expected 'dpop+jwt'")


def test_typ_case_insensitive() -> None:
    proof = proof_with(claims(), {"typ": "application/DPoP+JWT", "jwk": jwk_of(KEY)})
    verify(proof)


def test_alg_none() -> None:
    header = b64url_encode(json.dumps({"alg": "none", "typ": "dpop+jwt"}).encode())
    payload = b64url_encode(json.dumps(claims()).encode())
    expect(
        f"{header}.{payload}.",
        UnsupportedAlgorithmError,
        "JWS algorithm 'none' is not allowed",
    )


def test_jwk_missing() -> None:
    proof = proof_with(claims(), {"typ": "dpop+jwt"})
    expect(proof, DPoPProofError, "DPoP proof header 'jwk' is missing or not an object")


def test_jwk_private() -> None:
    jwk = dict(jwk_of(KEY), d="AAAA")
    proof = proof_with(claims(), {"typ": "dpop+jwt", "jwk": jwk})
    expect(proof, InvalidJWKError, "JWK must be public but has member 'd'")


def test_kid_header_rejected() -> None:
    proof = proof_with(claims(), {"typ": "dpop+jwt", "jwk": jwk_of(KEY), "kid": "k"})
    expect(proof, ForbiddenHeaderError, "JWS header member 'kid' is not allowed")


def test_signed_by_other_key() -> None:
    proof = proof_with(
        claims(), {"typ": "dpop+jwt", "jwk": jwk_of(SigningKey.generate())}
    )
    expect(proof, InvalidSignatureError, "DPoP proof signature is invalid for its jwk")


def test_alg_not_matching_jwk() -> None:
    proof = proof_with(claims(), {"typ": "dpop+jwt", "jwk": jwk_of(OTHER)})
    expect(proof, DPoPProofError, "DPoP proof alg 'ES256' does not match its jwk")


def test_wrong_htm() -> None:
    expect(
        proof_with(claims(htm="GET")),
        DPoPProofError,
        "DPoP proof htm 'GET' is not 'POST'",
    )


def test_htm_case_sensitive() -> None:
    expect(
        proof_with(claims(htm="post")),
        DPoPProofError,
        "DPoP proof htm 'post' is not 'POST'",
    )


def test_wrong_htu() -> None:
    expect(
        proof_with(claims(htu="https://as.example/other")),
        DPoPProofError,
        "DPoP proof htu 'https://as.example/other' does not match 'https://as.example/token'",
    )


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example/token?x=1",
        "https://as.example/token#frag",
        "HTTPS://AS.EXAMPLE/token",
        "https://as.example:443/token",
    ],
)
def test_htu_normalized(htu: str) -> None:
    verify(proof_with(claims(htu=htu)))


def test_normalize_htu() -> None:
    assert normalize_htu("http://h.example:80") == "http://h.example/"
    assert normalize_htu("http://h.example:8080/a?b") == "http://h.example:8080/a"
    assert normalize_htu("http://[::1]:8800/x") == "http://[::1]:8800/x"


def test_htu_bad_port() -> None:
    expect(
        proof_with(claims(htu="https://as.example:99999/token")),
        DPoPProofError,
        "DPoP htu 'https://as.example:99999/token' is not a valid URI",
    )


def test_iat_too_old() -> None:
    expect(
        proof_with(claims(iat=int(NOW) - 61)),
        DPoPProofError,
        "DPoP proof iat 1699999939 is older than 60 s (now 1700000000)",
    )


def test_iat_in_future() -> None:
    expect(
        proof_with(claims(iat=int(NOW) + 31)),
        DPoPProofError,
        "DPoP proof iat 1700000031 is in the future (now 1700000000, leeway 30 s)",
    )


def test_iat_within_leeway() -> None:
    verify(proof_with(claims(iat=int(NOW) + 30)))
    verify(proof_with(claims(iat=int(NOW) - 60)))


@pytest.mark.parametrize("iat", ["1700000000", True, None])
def test_iat_not_number(iat: Any) -> None:
    payload = claims()
    payload["iat"] = iat
    expect(
        proof_with(payload),
        DPoPProofError,
        "DPoP proof claim 'iat' is missing or not a number",
    )


@pytest.mark.parametrize("name", ["jti", "htm", "htu"])
def test_claim_missing(name: str) -> None:
    payload = claims()
    del payload[name]
    expect(
        proof_with(payload),
        DPoPProofError,
        f"DPoP proof claim {name!r} is missing or not a string",
    )


def test_ath_missing() -> None:
    expect(
        proof_with(claims()),
        DPoPProofError,
        "DPoP proof is missing 'ath' for the access token",
        access_token="tok",
    )


def test_ath_wrong() -> None:
    expect(
        proof_with(claims(ath=access_token_hash("other"))),
        DPoPProofError,
        "DPoP proof 'ath' does not match the access token",
        access_token="tok",
    )


def test_nonce_expected() -> None:
    expect(
        proof_with(claims()),
        DPoPProofError,
        "DPoP proof 'nonce' is missing or not the expected nonce",
        nonce="n1",
    )
    verify(proof_with(claims(nonce="n1")), nonce="n1")


def test_jti_too_long() -> None:
    expect(
        proof_with(claims(jti="j" * 257)),
        DPoPProofError,
        "DPoP proof jti is longer than 256 characters",
    )


def test_replay_cache_expiry() -> None:
    cache = ReplayCache(2)
    cache.check_and_add("a", expires_at=10, now=0)
    with pytest.raises(DPoPReplayError) as info:
        cache.check_and_add("a", expires_at=10, now=5)
    assert str(info.value) == "DPoP proof jti 'a' was already used"
    cache.check_and_add("a", expires_at=20, now=10)
    assert len(cache) == 1


def test_replay_cache_full() -> None:
    cache = ReplayCache(2)
    cache.check_and_add("a", expires_at=10, now=0)
    cache.check_and_add("b", expires_at=20, now=0)
    with pytest.raises(ReplayCacheFullError) as info:
        cache.check_and_add("c", expires_at=20, now=5)
    assert str(info.value) == "DPoP replay cache is full (2 entries)"
    cache.check_and_add("c", expires_at=30, now=10)
    assert len(cache) == 2


def test_replay_cache_size_invalid() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        ReplayCache(0)


@pytest.mark.parametrize("iat", [float("nan"), float("inf")], ids=["nan", "infinity"])
def test_non_finite_iat_rejected(iat: float) -> None:
    # Every comparison with NaN is false, so such a proof would have no time window.
    with pytest.raises(JOSEError) as info:
        verify(proof_with(claims(iat=iat)))
    assert "is not allowed" in str(info.value)


def test_expected_ath_accepted() -> None:
    proof = proof_with(claims(ath=access_token_hash("tok")))
    assert verify(proof, expected_ath=access_token_hash("tok")).ath == (
        access_token_hash("tok")
    )


def test_expected_ath_wrong() -> None:
    expect(
        proof_with(claims(ath=access_token_hash("other"))),
        DPoPProofError,
        "DPoP proof 'ath' does not match the access token",
        expected_ath=access_token_hash("tok"),
    )


def test_expected_ath_missing() -> None:
    expect(
        proof_with(claims()),
        DPoPProofError,
        "DPoP proof is missing 'ath' for the access token",
        expected_ath=access_token_hash("tok"),
    )


def test_expected_ath_and_access_token_exclusive() -> None:
    proof = proof_with(claims(ath=access_token_hash("tok")))
    with pytest.raises(ValueError, match="pass access_token or expected_ath, not both"):
        verify(proof, access_token="tok", expected_ath=access_token_hash("tok"))


@pytest.mark.parametrize(
    "ath", ["\u00e9" * 43, 7, ["a"]], ids=["non-ascii", "int", "list"]
)
def test_ath_not_ascii_string(ath: Any) -> None:
    expect(
        proof_with(claims(ath=ath)),
        DPoPProofError,
        "DPoP proof 'ath' does not match the access token",
        access_token="tok",
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"jti":"j1","jti":"j2"}', "JSON member 'jti' is duplicated"),
        ('{"iat":NaN}', "JSON constant 'NaN' is not allowed"),
        ('{"iat":-Infinity}', "JSON constant '-Infinity' is not allowed"),
        ('{"iat":1e400}', "JSON number '1e400' is out of range"),
        ('{"x":' + "[" * 64 + "]" * 64 + "}", "nests deeper than 64 levels"),
        ("\ufeff{}", "JWS payload is not valid UTF-8 JSON"),
        ('{"a":1} x', "JWS payload is not valid UTF-8 JSON"),
    ],
    ids=["duplicate", "nan", "infinity", "overflow", "depth", "bom", "trailing"],
)
def test_payload_strict_json(payload: str, message: str) -> None:
    header = {"typ": "dpop+jwt", "jwk": jwk_of(KEY), "alg": "ES256"}
    signing_input = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(payload.encode())
    )
    proof = f"{signing_input}.{b64url_encode(sign_bytes(KEY, signing_input.encode()))}"
    with pytest.raises(MalformedJWSError) as info:
        verify(proof)
    assert message in str(info.value)


def test_payload_brackets_in_string() -> None:
    # 70 brackets inside a string force the depth walk, which finds depth 1.
    proof = proof_with(claims(nonce="[" * 70))
    assert verify(proof, nonce="[" * 70).nonce == "[" * 70


def test_cached_header_still_checks_signature() -> None:
    good = proof_with(claims(jti="first"))
    verify(good)
    # The header text is the same, so it comes from the cache, but the payload changed.
    header, _, signature = good.split(".")
    forged = f"{header}.{b64url_encode(json.dumps(claims(jti='other')).encode())}"
    expect(
        f"{forged}.{signature}",
        InvalidSignatureError,
        "DPoP proof signature is invalid for its jwk",
    )


def test_cached_header_replay_rejected() -> None:
    cache = ReplayCache(10)
    verify(proof_with(claims(jti="warm")), replay=cache)
    proof = proof_with(claims(jti="again"))
    verify(proof, replay=cache)
    expect(
        proof, DPoPReplayError, "DPoP proof jti 'again' was already used", replay=cache
    )


def test_cached_header_algorithms_narrowed() -> None:
    proof = proof_with(claims(jti="narrow"))
    verify(proof)
    expect(
        proof_with(claims(jti="narrow-2")),
        UnsupportedAlgorithmError,
        "JWS algorithm 'ES256' is not allowed",
        algorithms=frozenset({"EdDSA"}),
    )


@pytest.mark.parametrize(
    ("iat", "shown"),
    [(1e300, "1e+300"), (-(2.0**53), "-9007199254740992.0")],
    ids=["huge-float", "just-below"],
)
def test_iat_out_of_range(iat: float, shown: str) -> None:
    expect(
        proof_with(claims(iat=iat)),
        DPoPProofError,
        f"DPoP proof claim 'iat' {shown} is out of range: a NumericDate must be "
        "between -(2**53 - 1) and 2**53 - 1",
    )


@pytest.mark.parametrize(
    ("iat", "shown"),
    [(10**400, "(an integer of 1329 bits)"), (float("nan"), "nan")],
    ids=["huge-integer", "nan"],
)
def test_check_time_out_of_range(iat: float, shown: str) -> None:
    # Neither value passes the JWS payload parser, so the check is called directly.
    with pytest.raises(DPoPProofError) as info:
        _check_time(iat, now=NOW, max_age=300, leeway=60)
    assert str(info.value) == (
        f"DPoP proof claim 'iat' {shown} is out of range: a NumericDate must be "
        "between -(2**53 - 1) and 2**53 - 1"
    )


def test_iat_huge_integer_in_payload() -> None:
    with pytest.raises(JOSEError) as info:
        verify(proof_with(claims(iat=10**400)))
    assert str(info.value) == (
        "JSON number '10000000000000000000...' (401 digits) in member 'iat' is out "
        "of range: integers must be between -(2**53 - 1) and 2**53 - 1"
    )


def verify_jkt(proof: str, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {"htm": "POST", "htu": HTU, "now": NOW}
    arguments.update(kwargs)
    arguments.setdefault("replay", ReplayCache(100))
    arguments.setdefault("expected_ath", access_token_hash("tok"))
    return verify_dpop_proof_jkt(proof, **arguments)


def test_jkt_only_returns_thumbprint() -> None:
    proof = proof_with(claims(jti="jkt-1", ath=access_token_hash("tok")))
    assert verify_jkt(proof) == KEY.thumbprint()


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"ath": access_token_hash("other")},
            DPoPProofError,
            "DPoP proof 'ath' does not match the access token",
        ),
        (
            {"ath": None},
            DPoPProofError,
            "DPoP proof is missing 'ath' for the access token",
        ),
        ({"htm": "GET"}, DPoPProofError, "DPoP proof htm 'GET' is not 'POST'"),
        (
            {"iat": int(NOW) - 61},
            DPoPProofError,
            f"DPoP proof iat {int(NOW) - 61} is older than 60 s (now {NOW:.0f})",
        ),
    ],
    ids=["ath-wrong", "ath-missing", "htm", "iat-old"],
)
def test_jkt_only_runs_every_check(
    changes: dict[str, Any], error: type[JOSEError], message: str
) -> None:
    payload = claims(jti="jkt-checks", ath=access_token_hash("tok"))
    payload.update(changes)
    payload = {name: value for name, value in payload.items() if value is not None}
    with pytest.raises(error) as info:
        verify_jkt(proof_with(payload))
    assert str(info.value) == message


def test_jkt_only_checks_signature() -> None:
    good = proof_with(claims(jti="jkt-sig", ath=access_token_hash("tok")))
    header, _, signature = good.split(".")
    changed = claims(jti="jkt-other", ath=access_token_hash("tok"))
    forged = f"{header}.{b64url_encode(json.dumps(changed).encode())}.{signature}"
    with pytest.raises(InvalidSignatureError) as info:
        verify_jkt(forged)
    assert str(info.value) == "DPoP proof signature is invalid for its jwk"


def test_jkt_only_rejects_replay() -> None:
    cache = ReplayCache(10)
    proof = proof_with(claims(jti="jkt-replay", ath=access_token_hash("tok")))
    verify_jkt(proof, replay=cache)
    with pytest.raises(DPoPReplayError) as info:
        verify_jkt(proof, replay=cache)
    assert str(info.value) == "DPoP proof jti 'jkt-replay' was already used"
