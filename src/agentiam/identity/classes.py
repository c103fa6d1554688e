"""Agent classes: the blueprints agent instances attest to, and their keys."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, select

from agentiam.identity.errors import InvalidAgentClassError, UnknownAgentClassError
from agentiam.identity.tables import agent_classes, class_keys, users

# A class name is one SPIFFE ID path segment (letters, digits, '.', '-', '_'), and it
# starts with a letter or digit so that it is never '.' or '..'.
_CLASS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True, slots=True)
class AgentClass:
    """An agent class: its owner, scope ceiling, audiences and delegation limits.

    TTLs are in seconds. ``max_depth`` is the maximum number of agent hops of a
    delegation chain that an instance of this class takes part in.
    """

    name: str
    owner: str
    scopes: frozenset[str]
    audiences: frozenset[str]
    may_spawn: frozenset[str]
    max_depth: int
    default_ttl: int
    max_ttl: int
    allow_impersonation: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON view of the class, with sets as sorted lists."""
        return {
            "name": self.name,
            "owner": self.owner,
            "scopes": sorted(self.scopes),
            "audiences": sorted(self.audiences),
            "may_spawn": sorted(self.may_spawn),
            "max_depth": self.max_depth,
            "default_ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
            "allow_impersonation": self.allow_impersonation,
        }


def validate_class_name(name: str) -> None:
    """Check that a name can be an agent class name and a SPIFFE path segment.

    Raises:
        InvalidAgentClassError: naming the value.
    """
    if not _CLASS_NAME.fullmatch(name):
        raise InvalidAgentClassError(
            f"Invalid agent class name '{name}': expected 1 to 64 characters of "
            "A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit."
        )


def validate_audience(audience: str) -> None:
    """Check that an audience is an absolute http(s) URI without a fragment.

    RFC 8707 section 2 requires a resource indicator to be an absolute URI with no
    fragment.

    Raises:
        InvalidAgentClassError: naming the value.
    """
    parts = urlsplit(audience)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise InvalidAgentClassError(
            f"Invalid audience '{audience}': expected an absolute http or https URI "
            "without a fragment."
        )


def validate_agent_class(agent_class: AgentClass) -> None:
    """Check every field of an agent class except that its owner exists.

    Raises:
        InvalidAgentClassError: naming the first bad value.
    """
    validate_class_name(agent_class.name)
    for scope in sorted(agent_class.scopes):
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise InvalidAgentClassError(
                f"Invalid scope '{scope}': expected printable ASCII without spaces, "
                "'\"' or '\\'."
            )
    for audience in sorted(agent_class.audiences):
        validate_audience(audience)
    for child in sorted(agent_class.may_spawn):
        validate_class_name(child)

    if agent_class.max_depth < 1:
        raise InvalidAgentClassError(
            f"Invalid max_depth {agent_class.max_depth}: expected at least 1."
        )
    if agent_class.default_ttl < 1:
        raise InvalidAgentClassError(
            f"Invalid default_ttl {agent_class.default_ttl}: expected at least 1 "
            "second."
        )
    if agent_class.default_ttl > agent_class.max_ttl:
        raise InvalidAgentClassError(
            f"Invalid default_ttl {agent_class.default_ttl}: expected at most "
            f"max_ttl {agent_class.max_ttl}."
        )


def _encode_set(values: Iterable[str]) -> str:
    return json.dumps(sorted(values))


def _decode_set(text: str) -> frozenset[str]:
    return frozenset(json.loads(text))


def _to_class(row: Any) -> AgentClass:
    return AgentClass(
        name=row.name,
        owner=row.owner_id,
        scopes=_decode_set(row.scopes),
        audiences=_decode_set(row.audiences),
        may_spawn=_decode_set(row.may_spawn),
        max_depth=int(row.max_depth),
        default_ttl=int(row.default_ttl),
        max_ttl=int(row.max_ttl),
        allow_impersonation=bool(row.allow_impersonation),
    )


class AgentClassStore:
    """Reads and writes agent classes and their registered attestation keys.

    Reads use the engine; writes are ``*_in`` methods that run inside a unit of work
    given to ``GroupCommitWriter.submit`` or ``run_sync``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_in(self, conn: Connection, agent_class: AgentClass, *, now: float) -> None:
        """Validate and insert an agent class; ``owner`` is a user id.

        Raises:
            InvalidAgentClassError: a field is invalid, the owner does not exist or
                the name is taken.
        """
        validate_agent_class(agent_class)

        owner = conn.execute(select(users.c.id).where(users.c.id == agent_class.owner))
        if owner.first() is None:
            raise InvalidAgentClassError(
                f"Invalid owner '{agent_class.owner}': no user has this id."
            )
        taken = conn.execute(
            select(agent_classes.c.name).where(agent_classes.c.name == agent_class.name)
        )
        if taken.first() is not None:
            raise InvalidAgentClassError(
                f"Agent class '{agent_class.name}' already exists."
            )

        conn.execute(
            agent_classes.insert().values(
                name=agent_class.name,
                owner_id=agent_class.owner,
                scopes=_encode_set(agent_class.scopes),
                audiences=_encode_set(agent_class.audiences),
                may_spawn=_encode_set(agent_class.may_spawn),
                max_depth=agent_class.max_depth,
                default_ttl=agent_class.default_ttl,
                max_ttl=agent_class.max_ttl,
                allow_impersonation=agent_class.allow_impersonation,
                created_at=now,
            )
        )

    def get(self, name: str) -> AgentClass | None:
        """Return the agent class with this name, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(agent_classes).where(agent_classes.c.name == name)
            ).first()
        return None if row is None else _to_class(row)

    def require(self, name: str) -> AgentClass:
        """Return the agent class with this name.

        Raises:
            UnknownAgentClassError: no class has this name.
        """
        agent_class = self.get(name)
        if agent_class is None:
            raise UnknownAgentClassError(f"Agent class '{name}' was not found.")
        return agent_class

    def list(self) -> builtins.list[AgentClass]:
        """Return every agent class, ordered by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(agent_classes).order_by(agent_classes.c.name))
            return [_to_class(row) for row in rows]

    def add_key_in(
        self,
        conn: Connection,
        name: str,
        *,
        kid: str,
        jwk: dict[str, Any],
        created_by: str,
        now: float,
    ) -> None:
        """Register a public JWK that signs root attestation assertions for a class.

        The caller checks that ``jwk`` is a public key and derives ``kid``.

        Raises:
            UnknownAgentClassError: no class has this name.
            InvalidAgentClassError: the class already has a key with this kid.
        """
        known = conn.execute(
            select(agent_classes.c.name).where(agent_classes.c.name == name)
        )
        if known.first() is None:
            raise UnknownAgentClassError(f"Agent class '{name}' was not found.")
        taken = conn.execute(
            select(class_keys.c.kid).where(
                class_keys.c.agent_class == name, class_keys.c.kid == kid
            )
        )
        if taken.first() is not None:
            raise InvalidAgentClassError(
                f"Agent class '{name}' already has a key with kid '{kid}'."
            )

        conn.execute(
            class_keys.insert().values(
                agent_class=name,
                kid=kid,
                jwk=json.dumps(jwk, sort_keys=True),
                created_by=created_by,
                created_at=now,
            )
        )

    def key(self, name: str, kid: str) -> dict[str, Any] | None:
        """Return the registered public JWK of a class by kid, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(class_keys.c.jwk).where(
                    class_keys.c.agent_class == name, class_keys.c.kid == kid
                )
            ).first()
        if row is None:
            return None
        jwk: dict[str, Any] = json.loads(row.jwk)
        return jwk

    def keys(self, name: str) -> builtins.list[str]:
        """Return the kids of the keys registered for a class, sorted."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(class_keys.c.kid)
                .where(class_keys.c.agent_class == name)
                .order_by(class_keys.c.kid)
            )
            return [row.kid for row in rows]
