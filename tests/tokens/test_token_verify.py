"""Token verifiers: every bad-input case with its exact error class and message."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentiam.jose import SigningKey, VerificationKey, sign_jws
from agentiam.jose._base64url import b64url_encode
from agentiam.jose.jws import sign_bytes, sign_jws_with_header
from agentiam.tokens import (
    ActorChainTooDeepError,
    ForbiddenTokenHeaderError,
    InvalidClaimError,
    InvalidTokenSignatureError,
    MalformedTokenError,
    TokenError,
    TokenExpiredError,
    TokenIssuedInFutureError,
    TokenNotYetValidError,
    UnknownTokenKeyError,
    UnsupportedTokenAlgorithmError,
    UnsupportedTokenVersionError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTokenTypeError,
    verify_access_token,
    verify_session_token,
    verify_svid,
)
from agentiam.tokens._checks import numeric_date

ISSUER = "http://127.0.0.1:8800"
AUDIENCE = "https://support.example/api"
NOW = 1_700_000_000
INSTANCE = "spiffe://agentiam.test/agent/support-orchestrator/i-1"
KEY = SigningKey.generate("ES256", kid="k1")
KEYS = {KEY.kid: KEY.verification_key()}


def lookup(kid: str) -> VerificationKey | None:
    return KEYS.get(kid)


def access_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "ver": 1,
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "jti": "at-1",
        "sub": "alice",
        "client_id": INSTANCE,
        "scope": "tickets refunds",
        "act": {"sub": INSTANCE},
        "depth": 1,
        "grant": {"id": "g-1", "receipt_hash": "aGFzaA"},
        "task": {"id": "t-1", "path": ["t-1"]},
        "cnf": {"jkt": "jkt-1"},
    }
    claims.update(changes)
    return claims


def svid_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "ver": 1,
        "iss": ISSUER,
        "aud": [ISSUER],
        "sub": INSTANCE,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "svid-1",
        "cnf": {"jkt": "jkt-1"},
    }
    claims.update(changes)
    return claims


def session_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "ver": 1,
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": "alice",
        "sid": "s-1",
        "amr": ["pwd"],
        "iat": NOW,
        "exp": NOW + 900,
        "jti": "sess-1",
        "admin": False,
    }
    claims.update(changes)
    return claims


def access(claims: dict[str, Any] | None = None, typ: str = "at+jwt") -> str:
    return sign_jws(access_claims() if claims is None else claims, KEY, typ=typ)


def check_access(token: str, now: float = NOW, audience: str | None = AUDIENCE) -> Any:
    return verify_access_token(token, lookup, issuer=ISSUER, audience=audience, now=now)


def expect(error: type[TokenError], message: str, call: Any, *args: Any) -> TokenError:
    with pytest.raises(error) as info:
        call(*args)
    assert type(info.value) is error
    assert str(info.value) == message
    return info.value


def part(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode())


def signed_raw(header_text: str, payload_text: str) -> str:
    signing_input = (
        f"{b64url_encode(header_text.encode())}.{b64url_encode(payload_text.encode())}"
    )
    signature = b64url_encode(sign_bytes(KEY, signing_input.encode()))
    return f"{signing_input}.{signature}"


def test_access_token_valid() -> None:
    claims = check_access(access())
    assert claims.sub == "alice"
    assert claims.client_id == INSTANCE
    assert claims.actors == (INSTANCE,)
    assert claims.cnf_jkt == "jkt-1"
    assert claims.scopes == frozenset({"tickets", "refunds"})


def test_access_token_audience_string() -> None:
    assert check_access(access(access_claims(aud=AUDIENCE))).aud == (AUDIENCE,)


def test_access_token_audience_skipped() -> None:
    check_access(access(access_claims(aud=["https://other.example"])), audience=None)


def test_svid_valid() -> None:
    token = sign_jws(svid_claims(), KEY, typ="JWT")
    claims = verify_svid(token, lookup, issuer=ISSUER, now=NOW)
    assert claims.agent_class == "support-orchestrator"
    assert claims.instance == "i-1"


def test_session_valid() -> None:
    token = sign_jws(session_claims(admin=True), KEY, typ="session+jwt")
    claims = verify_session_token(token, lookup, issuer=ISSUER, now=NOW)
    assert claims.admin is True
    assert claims.amr == ("pwd",)


def test_alg_none() -> None:
    header = part({"alg": "none", "kid": "k1", "typ": "at+jwt"})
    token = f"{header}.{part(access_claims())}."
    expect(
        UnsupportedTokenAlgorithmError,
        "JWS algorithm 'none' is not allowed",
        check_access,
        token,
    )


def test_hs256_signed_with_public_key() -> None:
    public_pem_like = json.dumps(KEYS["k1"].to_jwk()).encode()
    signing_input = f"{part({'alg': 'HS256', 'kid': 'k1', 'typ': 'at+jwt'})}."
    signing_input += part(access_claims())
    mac = hmac.new(public_pem_like, signing_input.encode(), hashlib.sha256).digest()
    expect(
        UnsupportedTokenAlgorithmError,
        "JWS algorithm 'HS256' is not allowed",
        check_access,
        f"{signing_input}.{b64url_encode(mac)}",
    )


def test_unknown_kid() -> None:
    token = sign_jws_with_header(access_claims(), KEY, {"kid": "k9", "typ": "at+jwt"})
    expect(UnknownTokenKeyError, "JWS kid 'k9' is not a known key", check_access, token)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("jwk", {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        ("jku", "https://attacker.example/jwks"),
        ("x5u", "https://attacker.example/cert.pem"),
        ("x5c", ["MIIB"]),
        ("crit", ["urn:example:unknown"]),
    ],
)
def test_forbidden_header(member: str, value: Any) -> None:
    header = {"kid": "k1", "typ": "at+jwt", member: value}
    token = sign_jws_with_header(access_claims(), KEY, header)
    expect(
        ForbiddenTokenHeaderError,
        f"JWS header member {member!r} is not allowed",
        check_access,
        token,
    )


def test_id_token_shape_as_access_token() -> None:
    id_token = {"iss": ISSUER, "sub": "alice", "aud": "client", "nonce": "n"}
    token = sign_jws({**id_token, "exp": NOW + 60, "iat": NOW}, KEY, typ="JWT")
    expect(
        WrongTokenTypeError,
        "JWS typ 'JWT' is not the expected 'at+jwt'",
        check_access,
        token,
    )


def test_svid_as_access_token() -> None:
    token = sign_jws(svid_claims(), KEY, typ="JWT")
    expect(
        WrongTokenTypeError,
        "JWS typ 'JWT' is not the expected 'at+jwt'",
        check_access,
        token,
    )


def test_access_token_as_svid() -> None:
    expect(
        WrongTokenTypeError,
        "JWS typ 'at+jwt' is not the expected 'JWT'",
        lambda: verify_svid(access(), lookup, issuer=ISSUER, now=NOW),
    )


def test_access_token_as_session() -> None:
    expect(
        WrongTokenTypeError,
        "JWS typ 'at+jwt' is not the expected 'session+jwt'",
        lambda: verify_session_token(access(), lookup, issuer=ISSUER, now=NOW),
    )


def test_expired() -> None:
    token = access()
    check_access(token, now=NOW + 300 + 29)
    expect(
        TokenExpiredError,
        "Token expired at 1700000300, now is 1700000330 (leeway 30 s)",
        check_access,
        token,
        NOW + 330,
    )


def test_not_yet_valid() -> None:
    token = access(access_claims(nbf=NOW + 100))
    error = expect(
        TokenNotYetValidError,
        "Token is not valid before 1700000100, now is 1700000000 (leeway 30 s)",
        check_access,
        token,
    )
    assert isinstance(error, TokenNotYetValidError)


def test_iat_in_future() -> None:
    token = access(access_claims(iat=NOW + 31, nbf=NOW))
    expect(
        TokenIssuedInFutureError,
        "Token iat 1700000031 is in the future, now is 1700000000 (leeway 30 s)",
        check_access,
        token,
    )
    check_access(access(access_claims(iat=NOW + 30)))


def test_svid_expired() -> None:
    token = sign_jws(svid_claims(), KEY, typ="JWT")
    expect(
        TokenExpiredError,
        "Token expired at 1700000300, now is 1700001000 (leeway 30 s)",
        lambda: verify_svid(token, lookup, issuer=ISSUER, now=NOW + 1000),
    )


def test_wrong_issuer() -> None:
    token = access(access_claims(iss="http://evil.example"))
    expect(
        WrongIssuerError,
        "Token iss 'http://evil.example' is not the expected 'http://127.0.0.1:8800'",
        check_access,
        token,
    )


def test_issuer_exact_match() -> None:
    expect(
        WrongIssuerError,
        f"Token iss {ISSUER + '/'!r} is not the expected {ISSUER!r}",
        check_access,
        access(access_claims(iss=ISSUER + "/")),
    )


def test_wrong_audience() -> None:
    token = access(access_claims(aud=["https://other.example"]))
    expect(
        WrongAudienceError,
        "Token aud ['https://other.example'] does not contain "
        "'https://support.example/api'",
        check_access,
        token,
    )


def test_svid_wrong_audience() -> None:
    token = sign_jws(svid_claims(aud=["https://other.example"]), KEY, typ="JWT")
    expect(
        WrongAudienceError,
        "Token aud ['https://other.example'] does not contain 'http://127.0.0.1:8800'",
        lambda: verify_svid(token, lookup, issuer=ISSUER, now=NOW),
    )


def test_changed_payload() -> None:
    header, _, signature = access().split(".")
    forged = f"{header}.{part(access_claims(scope='admin'))}.{signature}"
    expect(
        InvalidTokenSignatureError,
        "JWS signature is invalid for kid 'k1'",
        check_access,
        forged,
    )


def test_truncated() -> None:
    token = access()
    expect(
        MalformedTokenError, "JWS must have 3 parts, found 2", check_access, token[:-87]
    )
    expect(
        MalformedTokenError,
        "JWS signature is not unpadded base64url",
        check_access,
        token[:-1],
    )
    expect(
        InvalidTokenSignatureError,
        "JWS signature is invalid for kid 'k1'",
        check_access,
        token[:-86] + token[-86:-46],
    )


@pytest.mark.parametrize(
    ("index", "what"), [(0, "header"), (1, "payload"), (2, "signature")]
)
@pytest.mark.parametrize("bad", ["=", "+", "/", " ", "*"])
def test_not_base64url(index: int, what: str, bad: str) -> None:
    parts = access().split(".")
    parts[index] = parts[index][:8] + bad + parts[index][9:]
    expect(
        MalformedTokenError,
        f"JWS {what} is not unpadded base64url",
        check_access,
        ".".join(parts),
    )


def test_jwe() -> None:
    jwe = f"{part({'alg': 'dir', 'enc': 'A256GCM'})}..aXY.Y2lwaGVy.dGFn"
    error = expect(
        MalformedTokenError, "JWE is not accepted, only compact JWS", check_access, jwe
    )
    assert type(error.__cause__).__name__ == "JWENotAcceptedError"


def test_duplicate_claim() -> None:
    payload = json.dumps(access_claims())[:-1] + ', "sub": "mallory"}'
    token = signed_raw('{"alg":"ES256","kid":"k1","typ":"at+jwt"}', payload)
    expect(MalformedTokenError, "JSON member 'sub' is duplicated", check_access, token)


def test_duplicate_header() -> None:
    token = signed_raw('{"alg":"ES256","kid":"k1","typ":"at+jwt","typ":"JWT"}', "{}")
    expect(MalformedTokenError, "JSON member 'typ' is duplicated", check_access, token)


def nested_act(depth: int) -> dict[str, Any]:
    act: dict[str, Any] = {"sub": INSTANCE}
    for _ in range(depth - 1):
        act = {"sub": INSTANCE, "act": act}
    return act


def test_act_depth_limit() -> None:
    claims = check_access(access(access_claims(act=nested_act(16), depth=16)))
    assert len(claims.actors) == 16
    error = expect(
        ActorChainTooDeepError,
        "Token claim 'act' is nested deeper than 16 levels",
        check_access,
        access(access_claims(act=nested_act(17), depth=17)),
    )
    assert isinstance(error, InvalidClaimError)
    assert error.claim == "act"


def test_act_very_deep() -> None:
    # Deeper than the JSON recursion a recursive parser would survive.
    text = '{"sub":"x","act":' * 900 + '{"sub":"x"}' + "}" * 900
    payload = json.dumps(access_claims())[:-1] + ', "extra": ' + text + "}"
    payload = payload.replace('"act": {"sub": "' + INSTANCE + '"}', '"act": ' + text)
    token = signed_raw('{"alg":"ES256","kid":"k1","typ":"at+jwt"}', payload)
    expect(
        MalformedTokenError,
        "JWS payload nests deeper than 64 levels",
        check_access,
        token,
    )


def test_wrong_version() -> None:
    expect(
        UnsupportedTokenVersionError,
        "Token version 2 is not supported, expected 1",
        check_access,
        access(access_claims(ver=2)),
    )


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        ("ver", None, "Token claim 'ver' is missing"),
        ("ver", "1", "Token claim 'ver' must be an integer"),
        ("iss", None, "Token claim 'iss' is missing"),
        ("exp", "soon", "Token claim 'exp' must be a number"),
        ("exp", True, "Token claim 'exp' must be a number"),
        (
            "exp",
            1e300,
            "Token claim 'exp' 1e+300 is out of range: a NumericDate must be "
            "between -(2**53 - 1) and 2**53 - 1",
        ),
        (
            "iat",
            -(2.0**53),
            "Token claim 'iat' -9007199254740992.0 is out of range: a NumericDate "
            "must be between -(2**53 - 1) and 2**53 - 1",
        ),
        ("nbf", None, "Token claim 'nbf' is missing"),
        ("aud", [], "Token claim 'aud' must not be empty"),
        ("aud", 5, "Token claim 'aud' must be a list of non-empty strings"),
        ("sub", 7, "Token claim 'sub' must be a non-empty string"),
        ("scope", None, "Token claim 'scope' is missing"),
        ("depth", 0, "Token claim 'depth' must be at least 1, got 0"),
        ("depth", 1.5, "Token claim 'depth' must be an integer"),
        ("cnf", None, "Token claim 'cnf' is missing"),
        ("cnf", {}, "Token claim 'cnf.jkt' is missing"),
        ("cnf", {"jkt": 3}, "Token claim 'cnf.jkt' must be a non-empty string"),
        ("grant", {"id": "g"}, "Token claim 'grant.receipt_hash' is missing"),
        ("grant", "g", "Token claim 'grant' must be a JSON object"),
        (
            "task",
            {"id": "t", "path": ["r"]},
            "Token claim 'task.path' must end with the task id 't'",
        ),
        (
            "task",
            {"id": "t", "path": "t"},
            "Token claim 'task.path' must be a list of non-empty strings",
        ),
        (
            "act",
            {"sub": INSTANCE, "iss": "x"},
            "Token claim 'act' has unexpected member 'iss'",
        ),
        ("act", {"act": {"sub": INSTANCE}}, "Token claim 'act.sub' is missing"),
        ("act", "root", "Token claim 'act' must be a JSON object"),
        (
            "derived_from",
            ["a", 1],
            "Token claim 'derived_from' must be a list of non-empty strings",
        ),
        (
            "authorization_details",
            {},
            "Token claim 'authorization_details' must be a list",
        ),
        (
            "authorization_details",
            [{"amount": 1}],
            "Token claim 'authorization_details[0].type' is missing",
        ),
        (
            "client_id",
            "spiffe://a/b/",
            "Token claim 'client_id': Invalid SPIFFE ID 'spiffe://a/b/': "
            "path must not end with '/'",
        ),
    ],
)
def test_access_token_bad_claim(claim: str, value: Any, message: str) -> None:
    claims = access_claims()
    if value is None:
        del claims[claim]
    else:
        claims[claim] = value
    with pytest.raises(InvalidClaimError) as info:
        check_access(access(claims))
    assert str(info.value) == message


def test_svid_sub_not_agent_id() -> None:
    token = sign_jws(
        svid_claims(sub="spiffe://agentiam.test/workload/x"), KEY, typ="JWT"
    )
    expect(
        InvalidClaimError,
        "Token claim 'sub': Invalid agent SPIFFE ID "
        "'spiffe://agentiam.test/workload/x': path must be '/agent/<class>/<instance>'",
        lambda: verify_svid(token, lookup, issuer=ISSUER, now=NOW),
    )


def test_svid_missing_jkt() -> None:
    claims = svid_claims()
    del claims["cnf"]
    token = sign_jws(claims, KEY, typ="JWT")
    expect(
        InvalidClaimError,
        "Token claim 'cnf' is missing",
        lambda: verify_svid(token, lookup, issuer=ISSUER, now=NOW),
    )


def test_session_admin_not_bool() -> None:
    token = sign_jws(session_claims(admin="yes"), KEY, typ="session+jwt")
    expect(
        InvalidClaimError,
        "Token claim 'admin' must be a boolean",
        lambda: verify_session_token(token, lookup, issuer=ISSUER, now=NOW),
    )


def test_jose_error_chained() -> None:
    with pytest.raises(UnknownTokenKeyError) as info:
        check_access(sign_jws_with_header({}, KEY, {"kid": "x", "typ": "at+jwt"}))
    assert type(info.value.__cause__).__name__ == "UnknownKeyError"


TOKEN = access()


@settings(max_examples=300)
@given(st.data())
def test_any_byte_change_fails(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(TOKEN) - 1))
    replacement = data.draw(
        st.characters(codec="ascii").filter(lambda c: c != TOKEN[index])
    )
    with pytest.raises(TokenError):
        check_access(TOKEN[:index] + replacement + TOKEN[index + 1 :])


@settings(max_examples=50)
@given(
    st.from_regex(r"[a-z]{1,10}( [a-z]{1,10}){0,4}", fullmatch=True),
    st.lists(st.text(min_size=1, max_size=12), max_size=4),
    st.integers(1, 16),
)
def test_round_trip(scope: str, derived: list[str], depth: int) -> None:
    claims = access_claims(
        scope=scope, derived_from=derived, act=nested_act(depth), depth=depth
    )
    verified = check_access(access(claims))
    assert verified.scope == scope
    assert verified.derived_from == tuple(derived)
    assert len(verified.actors) == depth


def test_act_sub_not_client() -> None:
    other = "spiffe://example.org/agent/orchestrator/other"
    expect(
        InvalidClaimError,
        f"Token claim 'act.sub' {other!r} is not client_id {INSTANCE!r}",
        check_access,
        access(access_claims(act={"sub": other})),
    )


def test_depth_disagrees_with_act() -> None:
    expect(
        InvalidClaimError,
        "Token claim 'depth' is 2 but 'act' names 1 actors",
        check_access,
        access(access_claims(depth=2)),
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [(10**400, "(an integer of 1329 bits)"), (float("nan"), "nan")],
    ids=["huge-integer", "nan"],
)
def test_numeric_date_out_of_range(value: float, shown: str) -> None:
    # Neither value passes the JWS payload parser, so the check is called directly.
    with pytest.raises(InvalidClaimError) as info:
        numeric_date({"exp": value}, "exp")
    assert str(info.value) == (
        f"Token claim 'exp' {shown} is out of range: a NumericDate must be between "
        "-(2**53 - 1) and 2**53 - 1"
    )


def test_huge_exp_is_malformed() -> None:
    token = access(access_claims(exp=10**400))
    with pytest.raises(MalformedTokenError) as info:
        check_access(token)
    assert "in member 'exp' is out of range" in str(info.value)
