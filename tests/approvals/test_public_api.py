"""Pins the public names and wire codes of the approvals package."""

from __future__ import annotations

import agentiam.approvals
from agentiam.approvals import errors
from agentiam.approvals.ciba_grant import CIBA_GRANT_TYPE, CIBAGrantHandler


def test_approvals_all_is_pinned() -> None:
    assert sorted(agentiam.approvals.__all__) == [
        "ApprovalDecidedError",
        "ApprovalError",
        "AuthorizationPendingError",
        "CIBAAccessDeniedError",
        "CIBARequest",
        "CIBARequestStore",
        "ExpiredTokenError",
        "SlowDownError",
        "UnknownUserIdError",
    ]


def test_ciba_error_codes() -> None:
    codes = {
        errors.UnknownUserIdError: ("unknown_user_id", 400),
        errors.AuthorizationPendingError: ("authorization_pending", 400),
        errors.SlowDownError: ("slow_down", 400),
        errors.ExpiredTokenError: ("expired_token", 400),
        errors.CIBAAccessDeniedError: ("access_denied", 400),
        errors.ApprovalDecidedError: ("invalid_request", 409),
    }

    for error, (code, status) in codes.items():
        assert (error.error, error.status) == (code, status), error.__name__


def test_handler_grant_type() -> None:
    assert CIBA_GRANT_TYPE == "urn:openid:params:grant-type:ciba"
    assert CIBAGrantHandler.grant_type == CIBA_GRANT_TYPE
