"""Build ``Settings`` from defaults, a TOML file, the environment and CLI flags.

Precedence, lowest first: defaults < TOML file (``--config FILE`` or
``AGENTIAM_CONFIG``) < ``AGENTIAM_<KEY>`` environment variables < CLI flags.  An
unknown key or a bad value raises ``ConfigError`` naming the key, the value and
where it came from.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentiam.config.errors import ConfigError
from agentiam.config.settings import (
    LOG_LEVELS,
    SIGNING_ALGS,
    Settings,
    host_in_url,
)

ENV_PREFIX = "AGENTIAM_"

#: ``AGENTIAM_*`` variables that are not settings: the config file path, the
#: key-encryption key, a CLI user's password and the audit sink's bearer token.  All
#: but the first are secrets and never part of ``Settings``.
RESERVED_ENV = frozenset(
    {
        "AGENTIAM_CONFIG",
        "AGENTIAM_KEK",
        "AGENTIAM_PASSWORD",
        "AGENTIAM_AUDIT_SINK_TOKEN",
    }
)

# A SPIFFE trust domain: lowercase letters, digits, '.', '-' and '_' (SPIFFE ID
# specification, section 2.1), at most 255 characters.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")

_INT_FIELDS = {f.name for f in dataclasses.fields(Settings) if f.type in ("int", int)}
_PATH_FIELDS = {"data_dir", "kek_file"}
_CHOICES: dict[str, tuple[str, ...]] = {
    "signing_alg": SIGNING_ALGS,
    "log_level": LOG_LEVELS,
}
# Upper limits of fields that have one: a TCP port number has 16 bits.
_MAXIMUMS = {"port": 65535}
# Fields that must be at least 1 (all the others: at least 0).
_POSITIVE = {
    "port",
    "access_token_ttl",
    "max_access_token_ttl",
    "svid_ttl",
    "session_ttl",
    "ciba_interval",
    "ciba_expires_in",
    "join_token_ttl",
    "audit_batch_max",
    "audit_tree_head_interval_ms",
    "form_max_bytes",
    "dpop_replay_max_entries",
    "revocation_refresh_ms",
    "audit_sink_batch_max",
    "audit_sink_interval_ms",
    "audit_sink_timeout",
}

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build and validate the settings; raise ``ConfigError`` on any bad input.

    ``config_file`` wins over ``AGENTIAM_CONFIG``.  ``overrides`` are CLI flags
    (``None`` values are ignored, so unset flags fall through).
    """
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}

    path = config_file if config_file is not None else env.get("AGENTIAM_CONFIG")
    if path:
        values.update(_read_file(Path(path)))

    values.update(_read_environ(env))

    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _convert(key, value, "command line")

    return _resolve(values)


def _read_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not valid TOML: {exc}"
        ) from None

    source = f"config file {str(path)!r}"
    return {
        key: _convert(key, value, source, from_text=False) for key, value in raw.items()
    }


def _read_environ(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue

        key = name[len(ENV_PREFIX) :].lower()
        values[key] = _convert(key, text, f"environment variable {name}")
    return values


def _convert(key: str, value: object, source: str, *, from_text: bool = True) -> object:
    """Check ``key`` is known and turn ``value`` into its type.

    Environment variables and flags are text, so ``from_text`` lets a string hold an
    integer; a TOML file must use TOML integers.
    """
    if key not in FIELD_NAMES:
        raise ConfigError(
            f"unknown setting {key!r} (value {value!r}) in {source}; "
            f"known settings: {', '.join(FIELD_NAMES)}"
        )

    if key in _INT_FIELDS:
        if isinstance(value, str) and not from_text:
            raise _bad(key, value, source, "expected an integer")
        return _to_int(key, value, source)
    if key in _PATH_FIELDS:
        if not isinstance(value, str | Path) or not str(value):
            raise _bad(key, value, source, "expected a non-empty path")
        return Path(value)
    if not isinstance(value, str):
        raise _bad(key, value, source, "expected a string")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise _bad(key, value, source, f"expected one of {', '.join(_CHOICES[key])}")
    return value


def _to_int(key: str, value: object, source: str) -> int:
    if isinstance(value, bool):
        raise _bad(key, value, source, "expected an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        number = int(value)
    else:
        raise _bad(key, value, source, "expected an integer")

    minimum = 1 if key in _POSITIVE else 0
    if number < minimum:
        raise _bad(key, value, source, f"expected an integer of at least {minimum}")
    maximum = _MAXIMUMS.get(key)
    if maximum is not None and number > maximum:
        raise _bad(
            key, value, source, f"expected an integer from {minimum} to {maximum}"
        )
    return number


def _bad(key: str, value: object, source: str, expected: str) -> ConfigError:
    return ConfigError(
        f"invalid value {value!r} for setting {key!r} in {source}: {expected}"
    )


def _resolve(values: dict[str, Any]) -> Settings:
    """Fill in the derived defaults and check the rules between fields."""
    settings = Settings(**values)
    derived: dict[str, Any] = {}

    if not settings.database_url:
        database = (settings.data_dir / "agentiam.db").as_posix()
        derived["database_url"] = f"sqlite:///{database}"
    if not settings.issuer:
        derived["issuer"] = f"http://{host_in_url(settings.host)}:{settings.port}"
    if "key_rotation_overlap" not in values:
        overlap = settings.max_access_token_ttl + settings.leeway
        derived["key_rotation_overlap"] = overlap

    settings = dataclasses.replace(settings, **derived)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    if not _TRUST_DOMAIN.fullmatch(settings.trust_domain):
        raise ConfigError(
            f"invalid value {settings.trust_domain!r} for setting 'trust_domain': "
            "expected lowercase letters, digits, '.', '-' and '_' only"
        )

    if settings.access_token_ttl > settings.max_access_token_ttl:
        raise ConfigError(
            f"invalid value {settings.access_token_ttl!r} for setting "
            f"'access_token_ttl': it exceeds max_access_token_ttl "
            f"({settings.max_access_token_ttl})"
        )

    if not settings.issuer.startswith(("https://", "http://")):
        raise ConfigError(
            f"invalid value {settings.issuer!r} for setting 'issuer': "
            "expected an http:// or https:// URL"
        )

    if (
        settings.issuer.endswith("/")
        or "?" in settings.issuer
        or "#" in settings.issuer
    ):
        raise ConfigError(
            f"invalid value {settings.issuer!r} for setting 'issuer': "
            "expected a URL without a trailing '/', query or fragment (RFC 8414)"
        )

    if not settings.database_url.startswith(("sqlite:///", "postgresql+psycopg://")):
        raise ConfigError(
            f"invalid value {settings.database_url!r} for setting 'database_url': "
            "expected sqlite:///PATH or postgresql+psycopg://..."
        )

    if settings.audit_sink_url and not settings.audit_sink_url.startswith(
        ("https://", "http://")
    ):
        raise ConfigError(
            f"invalid value {settings.audit_sink_url!r} for setting 'audit_sink_url': "
            "expected an http:// or https:// URL, or empty to turn the sink off"
        )
