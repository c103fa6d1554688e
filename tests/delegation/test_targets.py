"""The audience and resource parameters of token and CIBA requests."""

from __future__ import annotations

import pytest

from agentiam.api.forms import TARGET_PARAMETERS, parse_form_body
from agentiam.delegation.targets import requested_targets
from agentiam.errors import InvalidRequestError, InvalidTargetError, OAuthError

API = "https://support.example/api"
CRM = "https://crm.example/api"


def _targets(body: str) -> tuple[str, ...] | None:
    return requested_targets(
        parse_form_body(body.encode(), repeatable=TARGET_PARAMETERS)
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("scope=a", None, id="none"),
        pytest.param(f"audience={API}", (API,), id="one"),
        pytest.param(f"audience={API}&audience={CRM}", (CRM, API), id="repeated"),
        pytest.param(f"audience={API}&audience={API}", (API,), id="duplicate"),
        pytest.param(f"audience={API}+{CRM}", (CRM, API), id="space-separated"),
        pytest.param(f"audience=crm&resource={API}", ("crm", API), id="both"),
        pytest.param(f"resource={API}&resource={CRM}", (CRM, API), id="resources"),
    ],
)
def test_targets_parsed(body: str, expected: tuple[str, ...] | None) -> None:
    assert _targets(body) == expected


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [
        pytest.param(
            f"audience={API}&audience=",
            InvalidRequestError,
            "The parameter 'audience' has an empty value.",
            id="empty-audience",
        ),
        pytest.param(
            "resource=+",
            InvalidRequestError,
            "The parameter 'resource' has an empty value.",
            id="blank-resource",
        ),
        pytest.param(
            "resource=/api",
            InvalidTargetError,
            "Invalid resource '/api': expected an absolute URI without a fragment.",
            id="relative",
        ),
        pytest.param(
            f"resource={API}%23x",
            InvalidTargetError,
            f"Invalid resource '{API}#x': expected an absolute URI without a fragment.",
            id="fragment",
        ),
        pytest.param(
            "resource=http://[::1",
            InvalidTargetError,
            "Invalid resource 'http://[::1': expected an absolute URI without a "
            "fragment.",
            id="unparsable",
        ),
        pytest.param(
            "resource=x:" + "y" * 100,
            InvalidTargetError,
            f"Invalid resource '{'x:' + 'y' * 78}...': expected an absolute URI "
            "without a fragment.",
            id="long-value-cut",
        ),
    ],
)
def test_targets_rejected(body: str, error: type[OAuthError], message: str) -> None:
    with pytest.raises(error) as caught:
        _targets(body)

    assert caught.value.hint == message
