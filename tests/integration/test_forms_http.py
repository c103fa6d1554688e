"""Bad form bodies at the form endpoints of ``agentiam serve``.

Each is rejected with ``invalid_request`` and its exact description, never a 500,
and nothing is written: no task, no audit event, no revocation.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from test_exchange_http import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    Seeded,
    seeded,
)

__all__ = ["seeded"]

FORM = "application/x-www-form-urlencoded"
LIMIT = 65536
ENDPOINTS = ["/token", "/introspect", "/revoke"]


def _post(
    seeded: Seeded, path: str, content: bytes | Iterator[bytes], content_type: str
) -> httpx.Response:
    # /introspect and /revoke authenticate the client before reading the body.
    return httpx.post(
        f"{seeded.base_url}{path}",
        content=content,
        headers={"Content-Type": content_type},
        auth=(seeded.client_id, seeded.client_secret),
    )


BAD_BODIES = [
    (
        "repeated",
        b"grant_type=x&token=a&scope=a&scope=b",
        FORM,
        "The parameter 'scope' is repeated.",
    ),
    (
        "raw-not-utf8",
        b"grant_type=x&token=\xff",
        FORM,
        "The request body is not valid UTF-8.",
    ),
    (
        "escape-not-utf8",
        b"grant_type=x&token=%C0%AF",
        FORM,
        "A form parameter is not valid UTF-8.",
    ),
    (
        "json",
        b'{"grant_type": "x", "token": "a"}',
        "application/json",
        f"The content type must be {FORM}.",
    ),
    (
        "no-content-type",
        b"grant_type=x&token=a",
        "",
        f"The content type must be {FORM}.",
    ),
    (
        "latin-1",
        b"grant_type=x&token=a",
        f"{FORM}; charset=latin-1",
        "The form charset must be UTF-8.",
    ),
    (
        "oversized",
        b"grant_type=x&token=" + b"a" * LIMIT,
        FORM,
        f"The request body exceeds {LIMIT} bytes.",
    ),
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "content_type", "hint"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_form_http_rejects_bad_body(
    seeded: Seeded, path: str, body: bytes, content_type: str, hint: str
) -> None:
    before = seeded.written()

    response = _post(seeded, path, body, content_type)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"The request is invalid. {hint}",
    }
    assert seeded.written() == before


@pytest.mark.parametrize("path", ENDPOINTS)
def test_form_http_rejects_oversized_stream(seeded: Seeded, path: str) -> None:
    # Sent chunked, with no Content-Length to reject it before reading.
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=x&token="
        for _ in range(LIMIT // 1024 + 1):
            yield b"a" * 1024

    before = seeded.written()

    response = _post(seeded, path, chunks(), FORM)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"The request is invalid. The request body exceeds "
        f"{LIMIT} bytes.",
    }
    assert seeded.written() == before


def test_token_http_repeat_writes_nothing(seeded: Seeded) -> None:
    # A valid exchange but for the repeated scope: no task and no event.
    key, svid = seeded.worker()
    form = httpx.QueryParams(
        [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", seeded.root_token()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("actor_token", svid),
            ("actor_token_type", JWT_TOKEN_TYPE),
            ("scope", "refunds"),
            ("scope", "tickets"),
        ]
    )
    before = seeded.written()

    response = httpx.post(
        f"{seeded.base_url}/token",
        content=str(form).encode(),
        headers={"Content-Type": FORM, "DPoP": seeded.proof(key, "/token")},
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. The parameter 'scope' is "
        "repeated.",
    }
    assert seeded.written() == before


def test_revoke_http_repeat_revokes_nothing(seeded: Seeded) -> None:
    root = seeded.root_token()
    body = str(httpx.QueryParams([("token", root), ("token", root)])).encode()
    before = seeded.written()

    response = _post(seeded, "/revoke", body, FORM)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is invalid. The parameter 'token' is "
        "repeated.",
    }
    assert seeded.written() == before
    assert seeded.introspect(root)["active"] is True
