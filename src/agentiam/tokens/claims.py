"""Claim sets of each token kind as frozen value objects.

``from_dict`` checks every claim's type and raises InvalidClaimError naming the
claim. ``to_dict`` returns the wire layout. Claims not listed here are ignored,
as RFC 7519 section 4 allows. ``aud`` is kept as a tuple and always written as a
list. Optional claims that are absent (or an empty ``derived_from``) are omitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentiam.spiffe import SPIFFEID, parse_agent_spiffe_id
from agentiam.tokens import _checks as check
from agentiam.tokens.errors import (
    ActorChainTooDeepError,
    InvalidClaimError,
    UnsupportedTokenVersionError,
)

TOKEN_VERSION = 1
MAX_ACT_DEPTH = 16
# A sub-agent acts at depth len(ancestors) + 1, which is at most MAX_ACT_DEPTH.
MAX_ANCESTORS = MAX_ACT_DEPTH - 1
# Claim values quoted in error messages are cut to this many characters.
_QUOTED_LENGTH = 80


def _quoted(value: str) -> str:
    """Return ``value`` in quotes for a message, cut to ``_QUOTED_LENGTH``."""
    if len(value) > _QUOTED_LENGTH:
        value = value[:_QUOTED_LENGTH] + "..."
    return repr(value)


def _version(claims: dict[str, Any]) -> int:
    ver = check.integer(claims, "ver")
    if ver != TOKEN_VERSION:
        raise UnsupportedTokenVersionError(
            f"Token version {ver} is not supported, expected {TOKEN_VERSION}"
        )
    return ver


def _jkt(claims: dict[str, Any]) -> str:
    cnf = check.json_object(claims, "cnf")
    return check.string(cnf, "jkt", "cnf.jkt")


@dataclass(frozen=True, slots=True)
class Actor:
    """One link of an RFC 8693 ``act`` chain: the acting party and the one above it."""

    sub: str
    act: Actor | None = None

    @classmethod
    def from_dict(cls, value: Any) -> Actor:
        """Parse an ``act`` claim, at most MAX_ACT_DEPTH levels deep.

        Each level has only ``sub`` (a SPIFFE ID) and an optional nested ``act``.

        Raises:
            InvalidClaimError: a level is malformed.
            ActorChainTooDeepError: the chain is deeper than MAX_ACT_DEPTH.
        """
        subs: list[str] = []
        name = "act"
        # Iterative, so a hostile nesting depth cannot exhaust the stack.
        while value is not None:
            if len(subs) == MAX_ACT_DEPTH:
                raise ActorChainTooDeepError(
                    "act",
                    f"Token claim 'act' is nested deeper than {MAX_ACT_DEPTH} levels",
                )
            if not isinstance(value, dict):
                raise InvalidClaimError(
                    name, f"Token claim {name!r} must be a JSON object"
                )
            extra = sorted(set(value) - {"sub", "act"})
            if extra:
                raise InvalidClaimError(
                    name, f"Token claim {name!r} has unexpected member {extra[0]!r}"
                )
            subs.append(check.spiffe_id(value, "sub", f"{name}.sub"))
            value = value.get("act")
            name = f"{name}.act"

        if not subs:
            raise InvalidClaimError("act", "Token claim 'act' must be a JSON object")
        actor = cls(subs[-1])
        for sub in reversed(subs[:-1]):
            actor = cls(sub, actor)
        return actor

    def to_dict(self) -> dict[str, Any]:
        """Return the nested ``act`` object."""
        result: dict[str, Any] = {"sub": self.sub}
        if self.act is not None:
            result["act"] = self.act.to_dict()
        return result

    def chain(self) -> tuple[str, ...]:
        """Return the ``sub`` of every link, the acting party first."""
        subs: list[str] = []
        actor: Actor | None = self
        while actor is not None:
            subs.append(actor.sub)
            actor = actor.act
        return tuple(subs)


@dataclass(frozen=True, slots=True)
class GrantRef:
    """The grant a token derives from and the hash of its consent receipt."""

    id: str
    receipt_hash: str

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> GrantRef:
        """Parse a ``grant`` claim."""
        return cls(
            id=check.string(value, "id", "grant.id"),
            receipt_hash=check.string(value, "receipt_hash", "grant.receipt_hash"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the ``grant`` object."""
        return {"id": self.id, "receipt_hash": self.receipt_hash}


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task and its path of task ids from the root task to this one."""

    id: str
    path: tuple[str, ...]

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> TaskRef:
        """Parse a ``task`` claim, whose path must end with the task's own id."""
        task_id = check.string(value, "id", "task.id")
        path = check.string_list(value, "path", "task.path")
        if not path or path[-1] != task_id:
            raise InvalidClaimError(
                "task.path",
                f"Token claim 'task.path' must end with the task id {task_id!r}",
            )
        return cls(id=task_id, path=path)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``task`` object."""
        return {"id": self.id, "path": list(self.path)}


def _task(claims: dict[str, Any]) -> TaskRef | None:
    if "task" not in claims:
        return None
    return TaskRef.from_dict(check.json_object(claims, "task"))


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The claims of a delegated access token (RFC 9068 with RFC 8693 ``act``)."""

    iss: str
    aud: tuple[str, ...]
    exp: float
    iat: float
    nbf: float
    jti: str
    sub: str
    client_id: str
    scope: str
    depth: int
    grant: GrantRef
    cnf_jkt: str
    act: Actor | None = None
    task: TaskRef | None = None
    derived_from: tuple[str, ...] = ()
    authorization_details: tuple[dict[str, Any], ...] | None = None
    ver: int = TOKEN_VERSION

    @classmethod
    def from_dict(cls, claims: dict[str, Any]) -> AccessTokenClaims:
        """Parse and type-check access token claims.

        Raises:
            InvalidClaimError: a claim is missing or malformed, naming it.
            UnsupportedTokenVersionError: ``ver`` is not 1.
        """
        ver = _version(claims)
        depth = check.integer(claims, "depth")
        if depth < 1:
            raise InvalidClaimError(
                "depth", f"Token claim 'depth' must be at least 1, got {depth}"
            )
        client_id = check.spiffe_id(claims, "client_id")
        act = Actor.from_dict(claims["act"]) if "act" in claims else None
        _require_chain_consistent(client_id, depth, act)
        return cls(
            iss=check.string(claims, "iss"),
            aud=check.audience(claims),
            exp=check.numeric_date(claims, "exp"),
            iat=check.numeric_date(claims, "iat"),
            nbf=check.numeric_date(claims, "nbf"),
            jti=check.string(claims, "jti"),
            sub=check.string(claims, "sub"),
            client_id=client_id,
            scope=check.string(claims, "scope"),
            depth=depth,
            grant=GrantRef.from_dict(check.json_object(claims, "grant")),
            cnf_jkt=_jkt(claims),
            act=act,
            task=_task(claims),
            derived_from=(
                check.string_list(claims, "derived_from")
                if "derived_from" in claims
                else ()
            ),
            authorization_details=_authorization_details(claims),
            ver=ver,
        )

    @property
    def scopes(self) -> frozenset[str]:
        """The scope values as a set."""
        return frozenset(self.scope.split())

    @property
    def actors(self) -> tuple[str, ...]:
        """The ``act`` chain, acting party first, or empty when there is no ``act``."""
        return self.act.chain() if self.act is not None else ()

    def to_dict(self) -> dict[str, Any]:
        """Return the claims in the wire layout."""
        result: dict[str, Any] = {
            "ver": self.ver,
            "iss": self.iss,
            "aud": list(self.aud),
            "exp": self.exp,
            "iat": self.iat,
            "nbf": self.nbf,
            "jti": self.jti,
            "sub": self.sub,
            "client_id": self.client_id,
            "scope": self.scope,
        }
        if self.act is not None:
            result["act"] = self.act.to_dict()
        result["depth"] = self.depth
        result["grant"] = self.grant.to_dict()
        if self.task is not None:
            result["task"] = self.task.to_dict()
        if self.derived_from:
            result["derived_from"] = list(self.derived_from)
        if self.authorization_details is not None:
            result["authorization_details"] = [
                dict(d) for d in self.authorization_details
            ]
        result["cnf"] = {"jkt": self.cnf_jkt}
        return result


def _authorization_details(claims: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    """Parse RFC 9396 ``authorization_details``: a list of objects with a ``type``."""
    if "authorization_details" not in claims:
        return None
    value = claims["authorization_details"]
    if not isinstance(value, list):
        raise InvalidClaimError(
            "authorization_details",
            "Token claim 'authorization_details' must be a list",
        )
    for index, detail in enumerate(value):
        name = f"authorization_details[{index}]"
        if not isinstance(detail, dict):
            raise InvalidClaimError(name, f"Token claim {name!r} must be a JSON object")
        check.string(detail, "type", f"{name}.type")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class SVIDClaims:
    """The claims of a JWT-SVID of an agent instance."""

    iss: str
    aud: tuple[str, ...]
    sub: str
    iat: float
    exp: float
    jti: str
    cnf_jkt: str
    parent: str | None = None
    task: TaskRef | None = None
    ancestors: tuple[str, ...] = ()
    ver: int = TOKEN_VERSION

    @classmethod
    def from_dict(cls, claims: dict[str, Any]) -> SVIDClaims:
        """Parse and type-check JWT-SVID claims, with ``sub`` an agent SPIFFE ID.

        ``ancestors``, when present, is checked by ``_ancestors``.

        Raises:
            InvalidClaimError: a claim is missing or malformed, naming it.
            UnsupportedTokenVersionError: ``ver`` is not 1.
        """
        ver = _version(claims)
        sub = check.string(claims, "sub")
        try:
            parse_agent_spiffe_id(sub)
        except ValueError as err:
            raise InvalidClaimError("sub", f"Token claim 'sub': {err}") from err
        parent = check.spiffe_id(claims, "parent") if "parent" in claims else None
        return cls(
            iss=check.string(claims, "iss"),
            aud=check.audience(claims),
            sub=sub,
            iat=check.numeric_date(claims, "iat"),
            exp=check.numeric_date(claims, "exp"),
            jti=check.string(claims, "jti"),
            cnf_jkt=_jkt(claims),
            parent=parent,
            task=_task(claims),
            ancestors=_ancestors(claims, sub, parent),
            ver=ver,
        )

    @property
    def spiffe_id(self) -> SPIFFEID:
        """The parsed SPIFFE ID of the instance."""
        return SPIFFEID.parse(self.sub)

    @property
    def agent_class(self) -> str:
        """The agent class named in the SPIFFE ID."""
        return parse_agent_spiffe_id(self.sub)[1]

    @property
    def instance(self) -> str:
        """The instance name in the SPIFFE ID."""
        return parse_agent_spiffe_id(self.sub)[2]

    def to_dict(self) -> dict[str, Any]:
        """Return the claims in the wire layout."""
        result: dict[str, Any] = {
            "ver": self.ver,
            "iss": self.iss,
            "aud": list(self.aud),
            "sub": self.sub,
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
            "cnf": {"jkt": self.cnf_jkt},
        }
        if self.parent is not None:
            result["parent"] = self.parent
        if self.task is not None:
            result["task"] = self.task.to_dict()
        if self.ancestors:
            result["ancestors"] = list(self.ancestors)
        return result


def _ancestors(claims: dict[str, Any], sub: str, parent: str | None) -> tuple[str, ...]:
    """Parse ``ancestors``: the SPIFFE IDs of the instances above a sub-agent.

    The list runs from the root instance to the parent, so it is non-empty and
    ends with the ``parent`` claim. Each entry is an agent SPIFFE ID of the trust
    domain of ``sub``, named once, and never ``sub`` itself. It has at most
    MAX_ANCESTORS entries, because the instance acts at depth len + 1.

    A root SVID has neither claim. A sub-agent SVID without ``ancestors`` is
    rejected, because revoking an instance above its parent could not reach it.
    """
    if "ancestors" not in claims:
        if parent is not None:
            raise InvalidClaimError(
                "ancestors",
                "Token claim 'ancestors' is missing from an SVID that names 'parent'",
            )
        return ()
    value = claims["ancestors"]
    if not isinstance(value, list) or not value:
        raise InvalidClaimError(
            "ancestors", "Token claim 'ancestors' must be a non-empty list"
        )
    if len(value) > MAX_ANCESTORS:
        raise InvalidClaimError(
            "ancestors",
            f"Token claim 'ancestors' names {len(value)} instances, more than "
            f"the maximum of {MAX_ANCESTORS}",
        )

    trust_domain = SPIFFEID.parse(sub).trust_domain
    for index, item in enumerate(value):
        name = f"ancestors[{index}]"
        if not isinstance(item, str):
            raise InvalidClaimError(name, f"Token claim {name!r} must be a string")
        try:
            spiffe_id, _class, _instance = parse_agent_spiffe_id(item)
        except ValueError as err:
            raise InvalidClaimError(name, f"Token claim {name!r}: {err}") from err
        if spiffe_id.trust_domain != trust_domain:
            raise InvalidClaimError(
                name,
                f"Token claim {name!r} {_quoted(item)} is not in the trust domain "
                f"{trust_domain.name!r} of 'sub'",
            )

    _require_ancestry_consistent(value, sub, parent)
    return tuple(value)


def _require_ancestry_consistent(
    ancestors: list[str], sub: str, parent: str | None
) -> None:
    """Check that ``ancestors`` names distinct instances and ends at ``parent``."""
    if sub in ancestors:
        raise InvalidClaimError(
            "ancestors", f"Token claim 'ancestors' names 'sub' {_quoted(sub)}"
        )
    if len(set(ancestors)) != len(ancestors):
        repeated = next(item for item in ancestors if ancestors.count(item) > 1)
        raise InvalidClaimError(
            "ancestors",
            f"Token claim 'ancestors' names {_quoted(repeated)} more than once",
        )
    if parent is None:
        raise InvalidClaimError(
            "ancestors", "Token claim 'ancestors' is present without 'parent'"
        )
    if ancestors[-1] != parent:
        raise InvalidClaimError(
            "ancestors",
            f"Token claim 'ancestors' must end with 'parent' {_quoted(parent)}, "
            f"got {_quoted(ancestors[-1])}",
        )


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """The claims of a human session token."""

    iss: str
    aud: tuple[str, ...]
    sub: str
    sid: str
    amr: tuple[str, ...]
    iat: float
    exp: float
    jti: str
    admin: bool
    ver: int = TOKEN_VERSION

    @classmethod
    def from_dict(cls, claims: dict[str, Any]) -> SessionClaims:
        """Parse and type-check session token claims.

        Raises:
            InvalidClaimError: a claim is missing or malformed, naming it.
            UnsupportedTokenVersionError: ``ver`` is not 1.
        """
        return cls(
            ver=_version(claims),
            iss=check.string(claims, "iss"),
            aud=check.audience(claims),
            sub=check.string(claims, "sub"),
            sid=check.string(claims, "sid"),
            amr=check.string_list(claims, "amr"),
            iat=check.numeric_date(claims, "iat"),
            exp=check.numeric_date(claims, "exp"),
            jti=check.string(claims, "jti"),
            admin=check.boolean(claims, "admin"),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the claims in the wire layout."""
        return {
            "ver": self.ver,
            "iss": self.iss,
            "aud": list(self.aud),
            "sub": self.sub,
            "sid": self.sid,
            "amr": list(self.amr),
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
            "admin": self.admin,
        }


def _require_chain_consistent(client_id: str, depth: int, act: Actor | None) -> None:
    """Check that ``act`` names the acting client first and has ``depth`` actors.

    The server writes the three claims together; a token where they disagree was
    not issued by it, whatever its signature says about the key.
    """
    if act is None:
        return
    chain = act.chain()
    if chain[0] != client_id:
        raise InvalidClaimError(
            "act", f"Token claim 'act.sub' {chain[0]!r} is not client_id {client_id!r}"
        )
    if len(chain) != depth:
        raise InvalidClaimError(
            "depth",
            f"Token claim 'depth' is {depth} but 'act' names {len(chain)} actors",
        )
