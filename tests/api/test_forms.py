from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agentiam.api.errors import exception_handlers
from agentiam.api.forms import parse_form, parse_form_body
from agentiam.errors import InvalidRequestError

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client(asgi_client):
    async def echo(request: Request):
        form = await parse_form(request, max_bytes=64)
        return JSONResponse(dict(form))

    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"])],
        exception_handlers=dict(exception_handlers()),
    )
    return asgi_client(app)


def test_parses_single_values():
    form = parse_form_body(b"a=1&b=x+y&c=%C3%A9&d=")
    assert dict(form) == {"a": "1", "b": "x y", "c": "é", "d": ""}


def test_form_is_immutable():
    form = parse_form_body(b"a=1")
    with pytest.raises(TypeError):
        form["a"] = "2"  # type: ignore[index]


def test_repeated_parameter_named():
    with pytest.raises(InvalidRequestError) as info:
        parse_form_body(b"scope=a&scope=b")
    assert "The parameter 'scope' is repeated." in str(info.value)


def test_invalid_utf8_raw():
    with pytest.raises(InvalidRequestError, match="not valid UTF-8"):
        parse_form_body(b"a=\xff")


def test_invalid_utf8_percent_encoded():
    with pytest.raises(InvalidRequestError, match="not valid UTF-8"):
        parse_form_body(b"a=%FF")


def test_require_missing():
    with pytest.raises(InvalidRequestError, match="'grant_type' is missing"):
        parse_form_body(b"a=1").require("grant_type")


def test_repr_hides_values():
    assert "secret" not in repr(parse_form_body(b"token=secret"))


def test_endpoint_accepts_form(client):
    response = client.post("/echo", content=b"a=1", headers={"content-type": FORM})
    assert response.status_code == 200
    assert response.json() == {"a": "1"}


def test_endpoint_rejects_json(client):
    response = client.post("/echo", json={"a": 1})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert FORM in response.json()["error_description"]


def test_endpoint_rejects_other_charset(client):
    response = client.post(
        "/echo", content=b"a=1", headers={"content-type": FORM + "; charset=latin-1"}
    )
    assert response.status_code == 400
    assert "charset must be UTF-8" in response.json()["error_description"]


def test_endpoint_rejects_large_body(client):
    response = client.post(
        "/echo", content=b"a=" + b"x" * 100, headers={"content-type": FORM}
    )
    assert response.status_code == 400
    assert "exceeds 64 bytes" in response.json()["error_description"]


def test_endpoint_limit_while_streaming(client):
    async def chunks():
        for _ in range(10):
            yield b"x" * 10

    response = client.post("/echo", content=chunks(), headers={"content-type": FORM})
    assert response.status_code == 400
    assert "exceeds 64 bytes" in response.json()["error_description"]


def test_repeatable_parameter_keeps_every_value():
    form = parse_form_body(
        b"audience=a&scope=s&audience=b", repeatable=frozenset({"audience"})
    )

    assert form.get_all("audience") == ("a", "b")
    assert form["audience"] == "a b"
    assert form.get_all("scope") == ("s",)
    assert form.get_all("resource") == ()


def test_repeatable_leaves_other_repeats_rejected():
    with pytest.raises(InvalidRequestError) as info:
        parse_form_body(
            b"audience=a&scope=x&scope=y", repeatable=frozenset({"audience"})
        )

    assert "The parameter 'scope' is repeated." in str(info.value)


def test_repeated_parameter_name_cut():
    name = "n" * 100

    with pytest.raises(InvalidRequestError) as info:
        parse_form_body(f"{name}=1&{name}=2".encode())

    assert f"The parameter '{'n' * 64}' is repeated." in str(info.value)


@pytest.mark.parametrize(
    "body",
    [b"a=%ED%A0%80", b"a=%C0%AF", b"a=%E2%82", b"%FF=1"],
    ids=["surrogate", "overlong", "truncated", "name"],
)
def test_invalid_utf8_percent_encoded_rejected(body):
    with pytest.raises(InvalidRequestError) as info:
        parse_form_body(body)
    assert info.value.hint == "A form parameter is not valid UTF-8."


def test_decoded_value_cached_and_uncached_agree():
    short = "a=%7B%22x%22%3A+1%7D"
    long = "a=" + "%7B" * 300

    assert parse_form_body(short.encode())["a"] == '{"x": 1}'
    assert parse_form_body(short.encode())["a"] == '{"x": 1}'
    assert parse_form_body(long.encode())["a"] == "{" * 300


def test_invalid_escape_rejected_after_valid_one_cached():
    parse_form_body(b"a=%C3%A9")

    with pytest.raises(InvalidRequestError) as info:
        parse_form_body(b"a=%C3")
    assert info.value.hint == "A form parameter is not valid UTF-8."


def test_form_get_and_contains():
    form = parse_form_body(b"a=1&b=", repeatable=frozenset({"a"}))

    assert form.get("a") == "1"
    assert form.get("b") == ""
    assert form.get("c") is None
    assert form.get("c", "x") == "x"
    assert "b" in form
    assert "c" not in form


_FORM_CHARACTERS = st.sampled_from([*"ab=&+%;é", "%41", "%C3%A9", "%2B", "%26"])


@given(st.lists(_FORM_CHARACTERS, max_size=40).map("".join))
def test_parse_matches_parse_qsl(text):
    try:
        expected = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError:
        with pytest.raises(InvalidRequestError):
            parse_form_body(text.encode(), repeatable=frozenset({"a", "b", "a b"}))
        return
    names = [name for name, _ in expected]
    if len(set(names)) < len(names):
        return

    form = parse_form_body(text.encode())

    assert [(name, form[name]) for name in form] == expected
