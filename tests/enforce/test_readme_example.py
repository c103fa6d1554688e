"""The resource server of README step 6, behind the middleware and a fake issuer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from enforce_fakes import World

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[2] / "README.md"


def readme_app(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the step 6 code block and return the Starlette app it wraps."""
    text = README.read_text(encoding="utf-8")
    step = text[text.index("**6. Protect an API.**") :]
    match = re.search(r"```python\n(.*?)```", step, re.DOTALL)
    assert match is not None
    monkeypatch.setenv("SUPPORT_API_SECRET", "s3cret")
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README step 6", "exec"), namespace)
    return namespace["app"].app


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"amount": "80"}', 201, id="within-limit"),
        pytest.param(b'{"amount": "120"}', 403, id="over-limit"),
        pytest.param(b'{"amount": "-1"}', 403, id="negative"),
        pytest.param(b'{"amount": "NaN"}', 403, id="nan"),
        pytest.param(b'{"amount": "abc"}', 400, id="not-a-number"),
        pytest.param(b'{"amount": null}', 400, id="null"),
        pytest.param(b"{}", 400, id="no-amount"),
        pytest.param(b"[]", 400, id="array"),
        pytest.param(b"{", 400, id="bad-json"),
        pytest.param(b'{"amount": "\xff"}', 400, id="bad-utf8"),
        pytest.param(b"[" * 100_000, 400, id="deep"),
    ],
)
async def test_readme_refund_never_500(
    monkeypatch: pytest.MonkeyPatch, body: bytes, status: int
) -> None:
    world = World(readme_app(monkeypatch))
    try:
        headers = world.headers(world.token(), "POST", "/refunds")
        headers["Content-Type"] = "application/json"
        response = await world.api.post("/refunds", content=body, headers=headers)
    finally:
        await world.close()

    assert response.status_code == status, response.text
