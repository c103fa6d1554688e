"""Compact JWS signing and the strict verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentiam.jose import (
    ForbiddenHeaderError,
    InvalidSignatureError,
    InvalidTypeError,
    JOSEError,
    JWENotAcceptedError,
    MalformedJWSError,
    SigningKey,
    UnknownKeyError,
    UnsupportedAlgorithmError,
    VerificationKey,
    sign_jws,
    unverified_header,
    verify_jws,
)
from agentiam.jose._base64url import b64url_encode
from agentiam.jose.jws import (
    normalize_typ,
    sign_bytes,
    sign_jws_with_header,
    verify_signature,
)
from agentiam.strict_json import MAX_INTEGER

ES256_KEY = SigningKey.generate("ES256", kid="es")
ED_KEY = SigningKey.generate("EdDSA", kid="ed")
KEYS = {k.kid: k.verification_key() for k in (ES256_KEY, ED_KEY)}


def lookup(kid: str) -> VerificationKey | None:
    return KEYS.get(kid)


def part(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode())


def raw_part(text: str) -> str:
    return b64url_encode(text.encode())


def verify(token: str, typ: str = "at+jwt") -> tuple[dict[str, Any], dict[str, Any]]:
    return verify_jws(token, lookup, typ=typ)


def expect(
    token: str, error: type[JOSEError], message: str, typ: str = "at+jwt"
) -> None:
    with pytest.raises(error) as info:
        verify(token, typ)
    assert type(info.value) is error
    assert str(info.value) == message


@pytest.mark.parametrize("key", [ES256_KEY, ED_KEY], ids=["ES256", "EdDSA"])
def test_round_trip(key: SigningKey) -> None:
    token = sign_jws({"sub": "alice", "n": 1}, key, typ="at+jwt")
    header, payload = verify(token)
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    assert payload == {"sub": "alice", "n": 1}


@pytest.mark.parametrize("key", [ES256_KEY, ED_KEY], ids=["ES256", "EdDSA"])
def test_signed_parts_are_compact_json(key: SigningKey) -> None:
    claims = {"sub": "ålice", "aud": ["a", "b"], "n": 1, "act": {"sub": "x"}}
    header_part, payload_part, _ = sign_jws(claims, key, typ="at+jwt").split(".")
    expected_header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    compact = {"separators": (",", ":"), "ensure_ascii": False}
    assert header_part == raw_part(json.dumps(expected_header, **compact))
    assert payload_part == raw_part(json.dumps(claims, **compact))


def test_header_follows_key_and_typ() -> None:
    other = SigningKey.generate("ES256", kid="es-next")
    headers = [
        unverified_header(sign_jws({}, key, typ=typ))
        for key, typ in ((ES256_KEY, "at+jwt"), (other, "at+jwt"), (ES256_KEY, "JWT"))
    ]
    assert headers == [
        {"alg": "ES256", "kid": "es", "typ": "at+jwt"},
        {"alg": "ES256", "kid": "es-next", "typ": "at+jwt"},
        {"alg": "ES256", "kid": "es", "typ": "JWT"},
    ]


def test_es256_signature_is_raw_64_bytes() -> None:
    token = sign_jws({}, ES256_KEY, typ="JWT")
    assert len(token.split(".")[2]) == 86


def test_alg_none() -> None:
    token = f"{part({'alg': 'none', 'kid': 'es', 'typ': 'at+jwt'})}.{part({})}."
    expect(token, UnsupportedAlgorithmError, "JWS algorithm 'none' is not allowed")


def test_alg_missing() -> None:
    token = f"{part({'kid': 'es', 'typ': 'at+jwt'})}.{part({})}.AA"
    expect(
        token, UnsupportedAlgorithmError, "JWS header 'alg' is missing or not a string"
    )


@pytest.mark.parametrize("alg", ["HS256", "RS256", "PS256", "ES384", "ES512"])
def test_alg_outside_allow_list(alg: str) -> None:
    token = f"{part({'alg': alg, 'kid': 'es', 'typ': 'at+jwt'})}.{part({})}.AA"
    expect(token, UnsupportedAlgorithmError, f"JWS algorithm {alg!r} is not allowed")


def test_hs256_signed_with_public_key() -> None:
    # The classic confusion attack: HMAC keyed with the verifier's public key.
    public_jwk = json.dumps(KEYS["es"].to_jwk()).encode()
    signing_input = f"{part({'alg': 'HS256', 'kid': 'es', 'typ': 'at+jwt'})}.{part({})}"
    mac = hmac.new(public_jwk, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url_encode(mac)}"
    expect(token, UnsupportedAlgorithmError, "JWS algorithm 'HS256' is not allowed")


def test_alg_not_matching_key() -> None:
    token = sign_jws_with_header({}, ED_KEY, {"kid": "es", "typ": "at+jwt"})
    expect(
        token,
        UnsupportedAlgorithmError,
        "JWS algorithm 'EdDSA' does not match key 'es' ('ES256')",
    )


def test_algorithms_narrowed() -> None:
    token = sign_jws({}, ED_KEY, typ="at+jwt")
    with pytest.raises(UnsupportedAlgorithmError) as info:
        verify_jws(token, lookup, typ="at+jwt", algorithms=frozenset({"ES256"}))
    assert str(info.value) == "JWS algorithm 'EdDSA' is not allowed"


def test_unknown_kid() -> None:
    token = sign_jws_with_header({}, ES256_KEY, {"kid": "nope", "typ": "at+jwt"})
    expect(token, UnknownKeyError, "JWS kid 'nope' is not a known key")


def test_kid_missing() -> None:
    token = sign_jws_with_header({}, ES256_KEY, {"typ": "at+jwt"})
    expect(token, UnknownKeyError, "JWS header 'kid' is missing or not a string")


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("jwk", {"kty": "EC"}),
        ("jku", "https://attacker.example/jwks"),
        ("x5u", "https://attacker.example/cert"),
        ("x5c", ["MIIB"]),
        ("crit", ["exp"]),
        ("crit", ["unknown-extension"]),
        ("b64", False),
        ("cty", "JWT"),
    ],
)
def test_forbidden_header(member: str, value: Any) -> None:
    header = {"kid": "es", "typ": "at+jwt", member: value}
    token = sign_jws_with_header({}, ES256_KEY, header)
    expect(token, ForbiddenHeaderError, f"JWS header member {member!r} is not allowed")


def test_allowed_header_extended() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt", extra_header={"cty": "x"})
    header, _ = verify_jws(
        token,
        lookup,
        typ="at+jwt",
        allowed_header=frozenset({"alg", "kid", "typ", "cty"}),
    )
    assert header["cty"] == "x"


def test_extra_header_cannot_override() -> None:
    with pytest.raises(ForbiddenHeaderError) as info:
        sign_jws({}, ES256_KEY, typ="at+jwt", extra_header={"alg": "none"})
    assert str(info.value) == "JWS header member 'alg' cannot be set in extra_header"


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("at+jwt", "at+jwt"),
        ("AT+JWT", "at+jwt"),
        ("application/at+jwt", "at+jwt"),
        ("Application/At+Jwt", "at+jwt"),
        ("at+jwt", "application/at+jwt"),
        ("jwt", "JWT"),
    ],
)
def test_typ_equivalent(actual: str, expected: str) -> None:
    token = sign_jws({}, ES256_KEY, typ=actual)
    verify(token, expected)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("JWT", "at+jwt"),
        ("session+jwt", "at+jwt"),
        ("at+jwt", "JWT"),
        ("application/x/at+jwt", "at+jwt"),
        ("text/at+jwt", "at+jwt"),
    ],
)
def test_typ_wrong(actual: str, expected: str) -> None:
    token = sign_jws({}, ES256_KEY, typ=actual)
    expect(
        token,
        InvalidTypeError,
        f"JWS typ {actual!r} is not the expected {expected!r}",
        typ=expected,
    )


def test_typ_missing() -> None:
    token = sign_jws_with_header({}, ES256_KEY, {"kid": "es"})
    expect(token, InvalidTypeError, "JWS header 'typ' is missing, expected 'at+jwt'")


def test_normalize_typ() -> None:
    assert normalize_typ("Application/DPoP+JWT") == "dpop+jwt"
    assert normalize_typ("application/a/b") == "application/a/b"


def test_changed_payload() -> None:
    token = sign_jws({"sub": "alice"}, ES256_KEY, typ="at+jwt")
    header, _, signature = token.split(".")
    forged = f"{header}.{part({'sub': 'mallory'})}.{signature}"
    expect(forged, InvalidSignatureError, "JWS signature is invalid for kid 'es'")


def test_signature_wrong_length() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt")
    short = token[: token.rindex(".") + 1] + "AAAA"
    expect(short, InvalidSignatureError, "JWS signature is invalid for kid 'es'")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("abc", "JWS must have 3 parts, found 1"),
        ("a.b", "JWS must have 3 parts, found 2"),
        ("a.b.c.d", "JWS must have 3 parts, found 4"),
        ("a.b.c.d.e.f", "JWS must have 3 parts, found 6"),
        ("", "JWS must have 3 parts, found 1"),
    ],
)
def test_wrong_part_count(token: str, message: str) -> None:
    expect(token, MalformedJWSError, message)


def test_truncated_token() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt")
    expect(
        token[: token.rindex(".")], MalformedJWSError, "JWS must have 3 parts, found 2"
    )


def test_jwe_rejected() -> None:
    jwe = f"{part({'alg': 'RSA-OAEP', 'enc': 'A256GCM'})}.a.b.c.d"
    expect(jwe, JWENotAcceptedError, "JWE is not accepted, only compact JWS")


def test_not_a_string() -> None:
    with pytest.raises(MalformedJWSError) as info:
        verify(b"a.b.c")  # type: ignore[arg-type]
    assert str(info.value) == "JWS must be a string"


def test_too_long() -> None:
    token = "a" * 70000 + ".b.c"
    expect(token, MalformedJWSError, "JWS is longer than 65536 characters (70004)")


def _replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda p: p + "=", "padding"),
        (lambda p: p + "==", "double padding"),
        (lambda p: p[:-1] + "+", "plus"),
        (lambda p: p[:-1] + "/", "slash"),
        (lambda p: p[:4] + " " + p[4:], "space"),
        (lambda p: p[:4] + "\n" + p[4:], "newline"),
        (lambda p: p + "A" * ((1 - len(p)) % 4 or 4), "length 1 mod 4"),
        (lambda p: p[:4] + "\u00e9" + p[4:], "non-ascii"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
@pytest.mark.parametrize(
    ("index", "what"), [(0, "header"), (1, "payload"), (2, "signature")]
)
def test_not_base64url(mutate: Any, where: str, index: int, what: str) -> None:
    token = sign_jws({"sub": "alice"}, ES256_KEY, typ="at+jwt")
    bad = _replace_part(token, index, mutate(token.split(".")[index]))
    with pytest.raises(JOSEError) as info:
        verify(bad)
    assert type(info.value) is MalformedJWSError
    assert str(info.value) == f"JWS {what} is not unpadded base64url"


def test_signature_not_base64url() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt")
    expect(token + "=", MalformedJWSError, "JWS signature is not unpadded base64url")


def test_non_canonical_signature_bits() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt")
    # 64 bytes leave 4 unused bits in the last character; setting one must fail.
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = alphabet[alphabet.index(last) ^ 1]
    expect(
        token[:-1] + flipped,
        MalformedJWSError,
        "JWS signature is not unpadded base64url",
    )


def _signed(header_text: str, payload_text: str) -> str:
    from agentiam.jose.jws import sign_bytes

    signing_input = f"{raw_part(header_text)}.{raw_part(payload_text)}"
    signature = sign_bytes(ES256_KEY, signing_input.encode())
    return f"{signing_input}.{b64url_encode(signature)}"


def test_duplicate_header_member() -> None:
    token = _signed('{"alg":"ES256","kid":"es","typ":"at+jwt","alg":"none"}', "{}")
    expect(token, MalformedJWSError, "JSON member 'alg' is duplicated")


def test_duplicate_claim() -> None:
    token = _signed(
        '{"alg":"ES256","kid":"es","typ":"at+jwt"}', '{"sub":"a","sub":"b"}'
    )
    expect(token, MalformedJWSError, "JSON member 'sub' is duplicated")


def test_duplicate_nested_claim() -> None:
    payload = '{"cnf":{"jkt":"a","jkt":"b"}}'
    token = _signed('{"alg":"ES256","kid":"es","typ":"at+jwt"}', payload)
    expect(token, MalformedJWSError, "JSON member 'jkt' is duplicated")


@pytest.mark.parametrize(
    ("text", "what", "message"),
    [
        ("[]", "header", "JWS header is not a JSON object"),
        ("not json", "header", "JWS header is not valid UTF-8 JSON"),
        ("[1]", "payload", "JWS payload is not a JSON object"),
        ("{", "payload", "JWS payload is not valid UTF-8 JSON"),
    ],
)
def test_not_json_object(text: str, what: str, message: str) -> None:
    good_header = '{"alg":"ES256","kid":"es","typ":"at+jwt"}'
    token = _signed(text, "{}") if what == "header" else _signed(good_header, text)
    expect(token, MalformedJWSError, message)


def test_payload_not_utf8() -> None:
    from agentiam.jose.jws import sign_bytes

    header = raw_part('{"alg":"ES256","kid":"es","typ":"at+jwt"}')
    signing_input = f"{header}."
    signing_input += b64url_encode(b"\xff\xfe")
    signature = b64url_encode(sign_bytes(ES256_KEY, signing_input.encode()))
    expect(
        f"{signing_input}.{signature}",
        MalformedJWSError,
        "JWS payload is not valid UTF-8 JSON",
    )


def test_unverified_header() -> None:
    token = sign_jws({}, ES256_KEY, typ="at+jwt")
    assert unverified_header(token) == {"alg": "ES256", "kid": "es", "typ": "at+jwt"}


CLAIMS = st.dictionaries(
    st.text(max_size=10),
    st.one_of(
        st.integers(-MAX_INTEGER, MAX_INTEGER),
        st.text(max_size=20),
        st.booleans(),
        st.none(),
    ),
    max_size=6,
)


@settings(max_examples=50)
@given(CLAIMS, st.sampled_from([ES256_KEY, ED_KEY]))
def test_round_trip_property(claims: dict[str, Any], key: SigningKey) -> None:
    token = sign_jws(claims, key, typ="at+jwt")
    _, payload = verify(token)
    assert payload == claims


TOKEN = sign_jws({"sub": "alice", "scope": "a b"}, ES256_KEY, typ="at+jwt")
ED_TOKEN = sign_jws({"sub": "alice", "scope": "a b"}, ED_KEY, typ="at+jwt")


@settings(max_examples=300)
@given(st.data(), st.sampled_from([TOKEN, ED_TOKEN]))
def test_any_byte_change_fails(data: st.DataObject, token: str) -> None:
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(
        st.characters(codec="ascii").filter(lambda c: c != token[index])
    )
    changed = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(JOSEError):
        verify(changed)


@pytest.mark.parametrize(
    ("alg", "signer", "verifier"),
    [("ES256", "ES256", "EdDSA"), ("EdDSA", "EdDSA", "ES256")],
    ids=["es256-with-ed25519-key", "eddsa-with-p256-key"],
)
def test_verify_signature_rejects_other_key_type(
    alg: str, signer: str, verifier: str
) -> None:
    signing = SigningKey.generate(signer)
    other = SigningKey.generate(verifier).private_key.public_key()
    signature = sign_bytes(signing, b"input")
    assert verify_signature(alg, signing.private_key.public_key(), b"input", signature)
    assert not verify_signature(alg, other, b"input", signature)


def test_verify_signature_rejects_unknown_key() -> None:
    signing = SigningKey.generate("ES256")
    signature = sign_bytes(signing, b"input")
    assert not verify_signature("ES256", object(), b"input", signature)  # type: ignore[arg-type]
