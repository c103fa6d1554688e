"""EnforcementConfig and Rule, the settings of the enforcement middleware."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Rule:
    """A route rule: the scopes a method and path template require.

    Attributes:
        method: the HTTP method in upper case, or ``*`` for any method.
        path: a path template; ``{name}`` matches one non-empty path segment.
        scopes: every one of these must be in the token's scope.
        detail_type: when set, the token must also carry an ``authorization_details``
            object of this type; the handler checks its limits with
            ``authorize_detail``.
    """

    method: str
    path: str
    scopes: tuple[str, ...] = ()
    detail_type: str | None = None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"Rule path '{self.path}' must start with '/'.")

        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "scopes", tuple(self.scopes))
        pieces: list[str] = []
        position = 0
        for match in _PARAM.finditer(self.path):
            pieces.append(re.escape(self.path[position : match.start()]))
            pieces.append(f"(?P<{match.group(1)}>[^/]+)")
            position = match.end()
        pieces.append(re.escape(self.path[position:]))
        object.__setattr__(self, "pattern", re.compile("".join(pieces)))

    def matches(self, method: str, path: str) -> bool:
        """Return whether this rule covers the request method and path."""
        if self.method not in ("*", method):
            return False
        return self.pattern.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class EnforcementConfig:
    """The settings of an EnforcementMiddleware.

    Attributes:
        issuer: the agentiam server URL; tokens must carry it as ``iss``, and the
            metadata, JWKS, revocation feed and audit sink are fetched from it.
        audience: this resource server's identifier; tokens must list it in ``aud``.
        client_id: this resource server's client id at the agentiam server.
        client_secret: its secret, sent with HTTP Basic to the feed and audit sink.
        rules: the route rules, first match wins; a request no rule matches is
            denied with 403.
        leeway: seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        revocation_poll_interval: seconds between polls of the revocation feed.
        revocation_max_staleness: seconds the local revocation copy may go without
            a successful poll before every request fails with 503.
        jwks_min_refetch_interval: minimum seconds between two JWKS fetches caused
            by a token with an unknown ``kid``.
        algorithms: the JWS algorithms accepted for tokens and DPoP proofs.
        dpop_max_age: seconds a DPoP proof is accepted after its ``iat``.
        replay_cache_size: maximum number of DPoP ``jti`` values remembered.
        token_cache_size: maximum number of verified tokens kept in memory.
        audit_buffer_size: maximum number of decisions waiting to be sent; when it
            is full, requests fail with 503.
        audit_batch_size: maximum number of decisions per ``POST
            /v1/audit/decisions``.
        audit_flush_interval: seconds between flushes of a partial batch.
        http_timeout: seconds before a request to the agentiam server times out.
        realm: the ``realm`` of ``WWW-Authenticate``; the audience when empty.
        public_url: the scheme and authority clients use to reach this server, as
            in ``https://api.example``; the DPoP ``htu`` is checked against it. When
            empty, the request's own scheme and ``Host`` header are used.
        clock: returns the current time in Unix seconds; injected by tests.
    """

    issuer: str
    audience: str
    client_id: str
    client_secret: str = field(repr=False)
    rules: Sequence[Rule] = ()
    leeway: float = 30.0
    revocation_poll_interval: float = 2.0
    revocation_max_staleness: float = 60.0
    jwks_min_refetch_interval: float = 10.0
    algorithms: frozenset[str] = frozenset({"ES256", "EdDSA"})
    dpop_max_age: float = 60.0
    replay_cache_size: int = 100_000
    token_cache_size: int = 10_000
    audit_buffer_size: int = 10_000
    audit_batch_size: int = 200
    audit_flush_interval: float = 1.0
    http_timeout: float = 5.0
    realm: str = ""
    public_url: str = ""
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        for name in ("audit_buffer_size", "audit_batch_size", "token_cache_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"EnforcementConfig.{name} must be at least 1.")
        if self.revocation_poll_interval <= 0:
            raise ValueError("EnforcementConfig.revocation_poll_interval must be > 0.")
