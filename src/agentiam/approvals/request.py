"""Parse and check a CIBA authentication request against its agent class ceiling.

OIDC CIBA core 1.0 section 7.1 defines the request. agentiam runs poll mode only and
accepts exactly one hint, ``login_hint``, which carries the user's login. A request
wider than the agent class allows is rejected with the RFC error code, never trimmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agentiam import strict_json
from agentiam.api.forms import Form
from agentiam.audit.events import looks_like_jws
from agentiam.delegation.targets import requested_targets
from agentiam.errors import (
    InvalidAuthorizationDetailsError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
)
from agentiam.identity.classes import AgentClass
from agentiam.scope import split_scope
from agentiam.tokens.amounts import require_plain_amounts
from agentiam.tokens.errors import InvalidAmountError

# TODO(config): make the grant lifetime default and maximum settings; remove when
# Settings has grant_ttl and max_grant_ttl.
DEFAULT_GRANT_TTL = 3600
MAX_GRANT_TTL = 86400

MAX_BINDING_MESSAGE = 256
MAX_AUTHORIZATION_DETAILS = 32

_DIGITS = re.compile(r"^[0-9]{1,9}$")

# CIBA parameters that agentiam does not support. Sending one is an error rather than
# being ignored, so that a client cannot believe it got ping or push mode.
_UNSUPPORTED = {
    "id_token_hint": "Only login_hint is supported as a hint.",
    "login_hint_token": "Only login_hint is supported as a hint.",
    "client_notification_token": "Only poll mode is supported.",
    "user_code": "user_code is not supported.",
    "request": "Signed authentication requests are not supported.",
}


class InvalidBindingMessageError(OAuthError):
    """The binding_message is too long or not plain text (CIBA section 13)."""

    error = "invalid_binding_message"
    description = "The binding_message is invalid."


@dataclass(frozen=True, slots=True)
class AuthRequestParams:
    """A checked CIBA authentication request."""

    login_hint: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...]
    binding_message: str
    max_depth: int
    grant_ttl: int


def parse_auth_request(form: Form, agent_class: AgentClass) -> AuthRequestParams:
    """Parse a /bc-authorize form and check it against the agent class ceiling.

    Raises:
        InvalidRequestError: a parameter is missing, malformed or unsupported.
        InvalidScopeError: a scope is outside the class scopes.
        InvalidTargetError: an audience is outside the class audiences.
        InvalidAuthorizationDetailsError: authorization_details is not an array of
            objects with a string ``type``.
        InvalidBindingMessageError: binding_message is too long or not plain text.
    """
    for name, hint in _UNSUPPORTED.items():
        if name in form:
            raise InvalidRequestError(hint)

    login_hint = form.require("login_hint")

    scopes = parse_scope(form.get("scope"), agent_class)
    audiences = parse_audiences(form, agent_class)
    details = parse_authorization_details(form.optional("authorization_details"))
    binding_message = parse_binding_message(form.optional("binding_message"))

    max_depth = _parse_int(form.optional("max_depth"), "max_depth", default=1)
    if max_depth < 1 or max_depth > agent_class.max_depth:
        raise InvalidRequestError(
            f"Invalid max_depth '{max_depth}': expected 1 to "
            f"{agent_class.max_depth} for agent class '{agent_class.name}'."
        )

    # NOTE: CIBA defines requested_expiry as the lifetime of the auth_req_id; here
    # it sets the lifetime of the grant, and the auth_req_id lasts ciba_expires_in.
    grant_ttl = _parse_int(
        form.optional("requested_expiry"), "requested_expiry", default=DEFAULT_GRANT_TTL
    )
    if grant_ttl < 1 or grant_ttl > MAX_GRANT_TTL:
        raise InvalidRequestError(
            f"Invalid requested_expiry '{grant_ttl}': expected 1 to "
            f"{MAX_GRANT_TTL} seconds."
        )

    return AuthRequestParams(
        login_hint=login_hint,
        scopes=scopes,
        audiences=audiences,
        authorization_details=details,
        binding_message=binding_message,
        max_depth=max_depth,
        grant_ttl=grant_ttl,
    )


def parse_scope(text: str | None, agent_class: AgentClass) -> tuple[str, ...]:
    """Parse a space-separated scope and require it within the class scopes."""
    if not text:
        raise InvalidRequestError("The parameter 'scope' is missing.")

    scopes = split_scope(text)
    wider = sorted(set(scopes) - agent_class.scopes)
    if wider:
        raise InvalidScopeError(
            f"Scope '{wider[0]}' is not allowed for agent class '{agent_class.name}'."
        )

    return tuple(sorted(set(scopes)))


def parse_audiences(form: Form, agent_class: AgentClass) -> tuple[str, ...]:
    """Collect ``audience`` and ``resource`` values and require them in the class.

    Either parameter may be repeated, and a value may list several names separated
    by spaces (see ``delegation.targets``). RFC 8707 section 2 requires a resource
    to be an absolute URI without a fragment.
    """
    audiences = requested_targets(form)
    if audiences is None:
        raise InvalidRequestError("The parameter 'audience' or 'resource' is missing.")

    wider = sorted(set(audiences) - agent_class.audiences)
    if wider:
        raise InvalidTargetError(
            f"Audience '{wider[0]}' is not allowed for agent class "
            f"'{agent_class.name}'."
        )

    return audiences


def parse_authorization_details(text: str | None) -> tuple[dict[str, Any], ...]:
    """Parse RFC 9396 authorization_details: a JSON array of objects with a type."""
    if text is None:
        return ()

    try:
        value = strict_json.loads(text, what="the value")
    except strict_json.StrictJSONError as err:
        raise InvalidAuthorizationDetailsError(
            f"Invalid authorization_details: {err}."
        ) from err

    if not isinstance(value, list) or len(value) > MAX_AUTHORIZATION_DETAILS:
        raise InvalidAuthorizationDetailsError(
            f"Expected a JSON array of at most {MAX_AUTHORIZATION_DETAILS} objects."
        )

    for index, detail in enumerate(value):
        if not isinstance(detail, dict):
            raise InvalidAuthorizationDetailsError(
                f"authorization_details[{index}] is not an object."
            )
        kind = detail.get("type")
        if not isinstance(kind, str) or not kind:
            raise InvalidAuthorizationDetailsError(
                f"authorization_details[{index}] has no string 'type'."
            )

    try:
        require_plain_amounts(value)
    except InvalidAmountError as err:
        raise InvalidAuthorizationDetailsError(f"{err}.") from err
    return tuple(value)


def parse_binding_message(text: str | None) -> str:
    """Check that a binding_message is short, printable plain text."""
    if text is None:
        return ""

    if len(text) > MAX_BINDING_MESSAGE or not text.isprintable():
        raise InvalidBindingMessageError(
            f"Expected at most {MAX_BINDING_MESSAGE} printable characters."
        )

    # The message is shown to the human and recorded in the audit log, which rejects
    # anything shaped like a token, so such a message is rejected here first.
    if looks_like_jws(text):
        raise InvalidBindingMessageError("The message must not contain a token.")

    return text


def _parse_int(text: str | None, name: str, *, default: int) -> int:
    if text is None:
        return default

    if not _DIGITS.fullmatch(text):
        raise InvalidRequestError(
            f"Invalid {name} '{text}': expected a positive integer."
        )

    return int(text)
