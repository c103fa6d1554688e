"""JSON schemas of the identity routes, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_STRINGS: Schema = {"type": "array", "items": _STRING}
_JWK: Schema = {"type": "object", "description": "public JWK, EC P-256 or Ed25519"}


def _object(required: list[str], properties: dict[str, Schema]) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


LOGIN = _object(["login", "password"], {"login": _STRING, "password": _STRING})
SESSION = _object(
    ["session_token", "token_type", "expires_in"],
    {
        "session_token": _STRING,
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
    },
)

ATTEST: Schema = {
    "type": "object",
    "required": ["agent_class"],
    "properties": {
        "agent_class": _STRING,
        "join_token": _STRING,
        "assertion": {"type": "string", "description": "JWS signed by a class key"},
    },
    "oneOf": [{"required": ["join_token"]}, {"required": ["assertion"]}],
    "additionalProperties": False,
}
SPAWN = _object(
    ["agent_class", "public_jwk"], {"agent_class": _STRING, "public_jwk": _JWK}
)
SVID = _object(
    ["spiffe_id", "svid", "expires_in"],
    {"spiffe_id": _STRING, "svid": _STRING, "expires_in": {"type": "integer"}},
)

NEW_USER = _object(
    ["login", "password"],
    {
        "login": _STRING,
        "password": {"type": "string", "minLength": 12, "maxLength": 1024},
        "display_name": _STRING,
        "admin": {"type": "boolean", "default": False},
    },
)
USER = _object(
    ["id", "login", "display_name", "disabled", "admin", "created_at"],
    {
        "id": _STRING,
        "login": _STRING,
        "display_name": _STRING,
        "disabled": {"type": "boolean"},
        "admin": {"type": "boolean"},
        "created_at": {"type": "number"},
    },
)
USER_LIST = _object(["users"], {"users": {"type": "array", "items": USER}})

_CLASS_FIELDS: dict[str, Schema] = {
    "name": _STRING,
    "owner": _STRING,
    "scopes": _STRINGS,
    "audiences": _STRINGS,
    "may_spawn": _STRINGS,
    "max_depth": {"type": "integer", "minimum": 1},
    "default_ttl": {"type": "integer", "minimum": 1},
    "max_ttl": {"type": "integer", "minimum": 1},
    "allow_impersonation": {"type": "boolean"},
}
NEW_AGENT_CLASS = _object(["name", "owner", "scopes", "audiences"], _CLASS_FIELDS)
AGENT_CLASS = _object(list(_CLASS_FIELDS), _CLASS_FIELDS)
AGENT_CLASS_WITH_KEYS = _object(
    [*_CLASS_FIELDS, "keys"], {**_CLASS_FIELDS, "keys": _STRINGS}
)
AGENT_CLASS_LIST = _object(
    ["agent_classes"], {"agent_classes": {"type": "array", "items": AGENT_CLASS}}
)

NEW_CLASS_KEY = _object(["jwk"], {"jwk": _JWK})
CLASS_KEY = _object(["agent_class", "kid"], {"agent_class": _STRING, "kid": _STRING})

NEW_JOIN_TOKEN = _object(
    ["agent_class"], {"agent_class": _STRING, "ttl": {"type": "integer", "minimum": 1}}
)
JOIN_TOKEN = _object(
    ["join_token", "agent_class", "expires_at"],
    {"join_token": _STRING, "agent_class": _STRING, "expires_at": {"type": "number"}},
)

NEW_CLIENT = _object(
    ["client_id", "audiences"], {"client_id": _STRING, "audiences": _STRINGS}
)
CLIENT = _object(
    ["client_id", "audiences", "client_secret"],
    {"client_id": _STRING, "audiences": _STRINGS, "client_secret": _STRING},
)
