"""Audit events: the fixed, versioned schema of one decision in the audit log.

An event is validated when it is built, so no caller can put a token or a secret
into the log: strings that look like a compact JWS and values under keys such as
``password``, ``client_secret`` or ``subject_token`` raise ``AuditEventError``.
This module imports only the standard library, so the SDK can read events too.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# The private helpers are the C-encoder path of ``canonicalize``, which an event
# takes after a cheaper check of its own (see ``AuditEvent._encodes_as_json``).
from agentiam.audit._rfc8785 import (
    _fast_encode,
    _fast_encode_string,
    _is_fast_safe,
    _is_fast_safe_member,
    canonicalize,
)
from agentiam.audit.errors import AuditEventError, CanonicalizationError

# The schema version written as ``v`` in every event.  A change to the fields or
# their meaning gets a new version, because old leaves must still verify.
EVENT_VERSION: Final = 1

DECISIONS: Final = frozenset({"allow", "deny", "none"})

# Event types the server writes.  Other dotted lower-case names are accepted so a
# package can add a type without editing this module, but these are the known ones.
KNOWN_TYPES: Final = frozenset(
    {
        "decision",
        "agent.attested",
        "agent.attest_refused",
        "agent.renewed",
        "agent.renew_refused",
        "agent.spawned",
        "agent.spawn_refused",
        "approval.requested",
        "approval.denied",
        "grant.approved",
        "grant.revoked",
        "instance.revoked",
        "session.created",
        "session.refused",
        "session.revoked",
        "task.opened",
        "task.closed",
        "token.issued",
        "token.exchanged",
        "token.exchange_refused",
        "token.introspected",
        "token.revoked",
        "key.rotated",
    }
)

_TYPE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_MAX_TYPE_LENGTH: Final = 64
_MAX_STRING_LENGTH: Final = 4096
_MAX_DEPTH: Final = 8
_MAX_ACTORS: Final = 64

# A compact JWS or JWE starts with a base64url JSON header, and base64url of ``{"``
# is ``eyJ``.  Any string containing such a run followed by a dot is rejected.
_JWS_PATTERN: Final = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.?")

# Keys whose values are secrets.  A key is split into words on every character that
# is not a letter or digit.  It is sensitive when its last word is one of these
# (``subject_token`` and ``token`` are, ``token_type`` is not), or when it contains
# one of ``_SENSITIVE_SUBSTRINGS`` anywhere.
_SENSITIVE_LAST_WORDS: Final = frozenset(
    {
        "assertion",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "dpop",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
_SENSITIVE_SUBSTRINGS: Final = ("password", "secret", "private")

_REQUEST_KEYS: Final = frozenset(
    {"method", "path", "endpoint", "parameters", "status", "audience"}
)


# Event keys repeat across events, so their verdicts are cached.
@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Return whether a mapping key names a secret (a token, password, assertion)."""
    lowered = key.lower()
    if any(part in lowered for part in _SENSITIVE_SUBSTRINGS):
        return True
    words = [word for word in re.split(r"[^a-z0-9]+", lowered) if word]
    return bool(words) and words[-1] in _SENSITIVE_LAST_WORDS


def looks_like_jws(text: str) -> bool:
    """Return whether a string contains something shaped like a compact JWS or JWE."""
    # Every match starts with "eyJ", and a substring test is much cheaper than
    # a regular-expression search over strings that have none.
    return "eyJ" in text and _JWS_PATTERN.search(text) is not None


@functools.lru_cache(maxsize=4096)
def _is_plain_key(key: str) -> bool:
    """Return whether a mapping key passes every key check (cached, like the keys)."""
    return (
        not is_sensitive_key(key)
        and len(key) <= _MAX_STRING_LENGTH
        and not looks_like_jws(key)
    )


def _check_string(where: str, value: str) -> None:
    if len(value) > _MAX_STRING_LENGTH:
        raise AuditEventError(
            f"Audit field {where!r} is {len(value)} characters long, "
            f"more than the maximum of {_MAX_STRING_LENGTH}."
        )
    if looks_like_jws(value):
        raise AuditEventError(
            f"Audit field {where!r} contains a value shaped like a token; "
            "record its jti or a hash instead."
        )


def _freeze_json(where: str, value: Any, depth: int = 0) -> Any:
    """Check a JSON value for secrets and types, and return an immutable copy."""
    if depth > _MAX_DEPTH:
        raise AuditEventError(
            f"Audit field {where!r} nests deeper than {_MAX_DEPTH} levels."
        )
    kind = type(value)
    if kind is str:
        _check_string(where, value)
        return value
    if value is None or kind is bool or kind is int:
        return value
    # Exact dicts, lists and tuples skip the slower abstract-class checks below.
    if kind is dict:
        return _freeze_mapping(where, value, depth)
    if kind is list or kind is tuple:
        return _freeze_sequence(where, value, depth)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditEventError(f"Audit field {where!r} is not a finite number.")
        return value
    if isinstance(value, str):
        _check_string(where, value)
        return value
    if isinstance(value, Mapping):
        return _freeze_mapping(where, value, depth)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return _freeze_sequence(where, value, depth)
    raise AuditEventError(
        f"Audit field {where!r} has type {type(value).__name__!r}; "
        "expected a JSON value."
    )


def _freeze_sequence(where: str, value: Sequence[Any], depth: int) -> tuple[Any, ...]:
    if depth >= _MAX_DEPTH:
        # Every item nests too deep, and ``_freeze_json`` raises that error.
        return tuple(
            _freeze_json(f"{where}[{index}]", item, depth + 1)
            for index, item in enumerate(value)
        )
    items: list[Any] = []
    for index, item in enumerate(value):
        if type(item) is str:
            # The common case, checked here without building the item's path.
            if len(item) > _MAX_STRING_LENGTH or looks_like_jws(item):
                _check_string(f"{where}[{index}]", item)
            items.append(item)
        else:
            items.append(_freeze_json(f"{where}[{index}]", item, depth + 1))
    return tuple(items)


def _freeze_mapping(where: str, value: Mapping[Any, Any], depth: int) -> FrozenJSON:
    items: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str or not _is_plain_key(key):
            _reject_key(where, key)
        if type(item) is str:
            # The common case, checked here without building the field's path.
            # Only text that contains "eyJ" takes the call to ``looks_like_jws``.
            if len(item) > _MAX_STRING_LENGTH or (
                "eyJ" in item and looks_like_jws(item)
            ):
                _check_string(f"{where}.{key}", item)
            items[key] = item
        else:
            items[key] = _freeze_json(f"{where}.{key}", item, depth + 1)
    return FrozenJSON._adopt(items)


def _reject_key(where: str, key: object) -> None:
    """Raise the error for a key that ``_is_plain_key`` refused."""
    if not isinstance(key, str):
        raise AuditEventError(f"Audit field {where!r} has a key that is not text.")
    path = f"{where}.{key}"
    if is_sensitive_key(key):
        raise AuditEventError(
            f"Audit field {path!r} names a secret; secrets are never recorded."
        )
    _check_string(path, key)


class FrozenJSON(Mapping[str, Any]):
    """An immutable JSON object, so a frozen event cannot change after validation."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    @classmethod
    def _adopt(cls, items: dict[str, Any]) -> FrozenJSON:
        """Wrap ``items`` without the copy; the caller must not keep a reference."""
        frozen = cls.__new__(cls)
        frozen._items = items
        return frozen

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._items.items(), key=lambda item: item[0])))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenJSON({self._items!r})"


def thaw(value: Any) -> Any:
    """Return a plain ``dict``/``list`` copy of a frozen JSON value."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is FrozenJSON:
        # Most members are strings, which are returned as they are without a call.
        return {
            key: item if type(item) is str else thaw(item)
            for key, item in value._items.items()
        }
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    return value


def _optional_text(where: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AuditEventError(
            f"Audit field {where!r} has type {type(value).__name__!r}; "
            "expected a string or null."
        )
    _check_string(where, value)
    return value


def _text_tuple(where: str, value: object) -> tuple[str, ...]:
    if not value and (type(value) is tuple or type(value) is list):
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise AuditEventError(f"Audit field {where!r} must be a list of strings.")
    if len(value) > _MAX_ACTORS:
        raise AuditEventError(
            f"Audit field {where!r} has {len(value)} entries, "
            f"more than the maximum of {_MAX_ACTORS}."
        )
    items: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise AuditEventError(
                f"Audit field {where}[{index}] must be a non-empty string."
            )
        # The item's path is built only when the item fails a check.
        if len(item) > _MAX_STRING_LENGTH or looks_like_jws(item):
            _check_string(f"{where}[{index}]", item)
        items.append(item)
    return tuple(items)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One decision or state change, in the fixed schema of version ``EVENT_VERSION``.

    Attributes:
        type: dotted event type, e.g. ``grant.approved`` or ``decision``.
        decision: ``allow``, ``deny`` or ``none`` (a state change with no decision).
        outcome: short result code, e.g. ``issued``, ``refused``, ``approved``.
        reason: internal reason for a refusal; never shown to the client.
        human: the user id the authority comes from.
        receipt_hash: base64url SHA-256 of the consent receipt JWS.
        grant_id: the grant the authority flows from.
        actors: SPIFFE IDs of the acting chain, acting instance first.
        task_path: task ids from the root task to the task acted in.
        request: ``method``, ``path`` or ``endpoint``, safe ``parameters``,
            ``status`` and ``audience``.
        details: further safe values specific to the type.
        trace_id: the request's trace id, to join with the logs.
        time: Unix seconds; ``None`` means the log stamps it from its clock.
    """

    type: str
    decision: str = "none"
    outcome: str = ""
    reason: str | None = None
    human: str | None = None
    receipt_hash: str | None = None
    grant_id: str | None = None
    actors: Sequence[str] = ()
    task_path: Sequence[str] = ()
    request: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    time: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        """Validate every field and replace containers with immutable copies."""
        self._check_type_and_decision()
        if not isinstance(self.outcome, str):
            raise AuditEventError("Audit field 'outcome' must be a string.")
        _check_string("outcome", self.outcome)
        # ``_optional_text`` accepts ``None`` as it is, so only text is checked.
        if self.reason is not None:
            _optional_text("reason", self.reason)
        if self.human is not None:
            _optional_text("human", self.human)
        if self.receipt_hash is not None:
            _optional_text("receipt_hash", self.receipt_hash)
        if self.grant_id is not None:
            _optional_text("grant_id", self.grant_id)
        if self.trace_id is not None:
            _optional_text("trace_id", self.trace_id)
        _SET_ACTORS(self, _text_tuple("actors", self.actors))
        _SET_TASK_PATH(self, _text_tuple("task_path", self.task_path))
        _SET_REQUEST(self, self._checked_request())
        _SET_DETAILS(self, self._checked_details())
        self._check_time()

    def _check_type_and_decision(self) -> None:
        # Every known type passes the checks below, so it skips the pattern.
        known = type(self.type) is str and self.type in KNOWN_TYPES
        if not known and (
            not isinstance(self.type, str)
            or len(self.type) > _MAX_TYPE_LENGTH
            or not _TYPE_PATTERN.match(self.type)
        ):
            raise AuditEventError(
                f"Audit event type {self.type!r} is invalid; "
                "expected dotted lower-case words such as 'token.exchanged'."
            )
        if self.decision not in DECISIONS:
            raise AuditEventError(
                f"Audit decision {self.decision!r} is invalid; "
                "expected 'allow', 'deny' or 'none'."
            )

    def _checked_request(self) -> FrozenJSON:
        if type(self.request) is not dict and not isinstance(self.request, Mapping):
            raise AuditEventError("Audit field 'request' must be an object.")
        unknown = (
            []
            if _REQUEST_KEYS.issuperset(self.request)
            else sorted(set(self.request) - _REQUEST_KEYS)
        )
        if unknown:
            raise AuditEventError(
                f"Audit field 'request' has unknown key {unknown[0]!r}; "
                f"expected one of {sorted(_REQUEST_KEYS)}."
            )
        frozen = _freeze_mapping("request", self.request, 0)
        method = frozen._items.get("method")
        if method is not None and (
            not isinstance(method, str) or not method.isalpha() or not method.isupper()
        ):
            raise AuditEventError(
                f"Audit field 'request.method' is {method!r}; expected e.g. 'POST'."
            )
        return frozen

    def _checked_details(self) -> FrozenJSON:
        if type(self.details) is not dict and not isinstance(self.details, Mapping):
            raise AuditEventError("Audit field 'details' must be an object.")
        return _freeze_mapping("details", self.details, 0)

    def _check_time(self) -> None:
        if self.time is None or (
            type(self.time) is float and 0 <= self.time < math.inf
        ):
            return
        if (
            isinstance(self.time, bool)
            or not isinstance(self.time, int | float)
            or not math.isfinite(self.time)
            or self.time < 0
        ):
            raise AuditEventError(
                f"Audit field 'time' is {self.time!r}; expected Unix seconds."
            )

    @property
    def task_id(self) -> str | None:
        """The task acted in: the last entry of ``task_path``, if any."""
        return self.task_path[-1] if self.task_path else None

    def stamped(self, now: float) -> AuditEvent:
        """Return this event with ``time`` set to ``now`` unless it already has one."""
        if self.time is not None:
            return self
        return _replace_time(self, now)

    def to_dict(self) -> dict[str, Any]:
        """Return the event as the JSON object that is canonically encoded and hashed.

        Every field is present (``null`` when unset) so the shape of an event of one
        version never varies.
        """
        return {
            "v": EVENT_VERSION,
            "type": self.type,
            "time": self.time,
            "decision": self.decision,
            "outcome": self.outcome,
            "reason": self.reason,
            "human": self.human,
            "receipt_hash": self.receipt_hash,
            "grant_id": self.grant_id,
            "actors": list(self.actors),
            "task_path": list(self.task_path),
            "request": thaw(self.request),
            "details": thaw(self.details),
            "trace_id": self.trace_id,
        }

    def canonical(self) -> bytes:
        """Return the RFC 8785 encoding of ``to_dict()``: the bytes the leaf hashes.

        Raises:
            AuditEventError: a value has no exact canonical form, e.g. an integer
                beyond 2**53 in ``details``.
        """
        text = self._plain_text()
        if text is not None:
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate: ``canonicalize`` below raises the proper error.
                pass

        data = self.to_dict()
        if self._encodes_as_json(data):
            try:
                return _fast_encode(data).encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate: ``canonicalize`` raises the proper error.
                pass
        try:
            return canonicalize(data)
        except CanonicalizationError as err:
            raise AuditEventError(f"Audit event cannot be encoded: {err}") from err

    def _plain_text(self) -> str | None:
        """Return ``_fast_encode(self.to_dict())`` written member by member, or None.

        ``_fast_encode`` sorts the fixed ASCII keys of ``to_dict()`` into the
        order below, writes each string with ``_fast_encode_string``, ``None``
        as ``null``, a float with ``float.__repr__`` and a tuple as it writes a
        list.  So this text equals its output, without building the dictionary
        and thawed copies that it encodes.  The same checks as in
        ``_encodes_as_json`` come first, so the text is also the RFC 8785 text.
        ``None`` means the event takes the general path of ``canonical``: its
        time is not a float, a string is of a ``str`` subclass, or ``request``
        or ``details`` contains a nested object or a value that
        ``_is_fast_safe`` rejects.
        """
        time, request, details = self.time, self.request, self.details
        if (
            type(time) is not float
            or type(request) is not FrozenJSON
            or type(details) is not FrozenJSON
        ):
            return None
        for text in (self.type, self.decision, self.outcome, self.reason,
                     self.human, self.receipt_hash, self.grant_id, self.trace_id,
                     *self.actors, *self.task_path):  # fmt: skip
            if type(text) is not str and text is not None:
                return None
        if not (
            _is_fast_safe_member(time, 1)
            and _is_fast_safe(request._items, 1)
            and _is_fast_safe(details._items, 1)
        ):
            return None

        string = _fast_encode_string
        actors, task_path = self.actors, self.task_path
        reason, human, receipt_hash = self.reason, self.human, self.receipt_hash
        grant_id, trace_id = self.grant_id, self.trace_id
        return "".join(
            (
                '{"actors":[', ",".join(map(string, actors)) if actors else "",
                '],"decision":', string(self.decision),
                ',"details":', _fast_encode(details._items),
                ',"grant_id":', "null" if grant_id is None else string(grant_id),
                ',"human":', "null" if human is None else string(human),
                ',"outcome":', string(self.outcome),
                ',"reason":', "null" if reason is None else string(reason),
                ',"receipt_hash":',
                "null" if receipt_hash is None else string(receipt_hash),
                ',"request":', _fast_encode(request._items),
                ',"task_path":[',
                ",".join(map(string, task_path)) if task_path else "",
                '],"time":', float.__repr__(time),
                ',"trace_id":', "null" if trace_id is None else string(trace_id),
                ',"type":', string(self.type),
                _VERSION_TAIL,
            )
        )  # fmt: skip

    def _encodes_as_json(self, data: dict[str, Any]) -> bool:
        """Return whether ``_is_fast_safe(data)`` holds, checking less than it does.

        Validation leaves strings, ``None`` and tuples of strings in the members
        other than ``time``, ``request`` and ``details``, the keys are fixed
        ASCII names and ``v`` is a small integer.  Of those members
        ``_is_fast_safe`` refuses only a string of a ``str`` subclass, so their
        types are checked here and the walk runs on the other three alone.
        """
        for text in (self.type, self.decision, self.outcome, self.reason,
                     self.human, self.receipt_hash, self.grant_id, self.trace_id,
                     *self.actors, *self.task_path):  # fmt: skip
            if type(text) is not str and text is not None:
                return False
        return (
            _is_fast_safe_member(self.time, 1)
            and _is_fast_safe(data["request"], 1)
            and _is_fast_safe(data["details"], 1)
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """Build an event from its JSON object, rejecting other versions and keys.

        Raises:
            AuditEventError: the version is not ``EVENT_VERSION``, a key is missing
                or unknown, or a field is invalid.
        """
        if data.get("v") != EVENT_VERSION:
            raise AuditEventError(
                f"Audit event version {data.get('v')!r} is not supported; "
                f"expected {EVENT_VERSION}."
            )
        if data.keys() != _DICT_KEYS:
            missing = sorted(_DICT_KEYS - set(data))
            if missing:
                raise AuditEventError(f"Audit event is missing key {missing[0]!r}.")
            unknown = sorted(set(data) - _DICT_KEYS)
            raise AuditEventError(f"Audit event has unknown key {unknown[0]!r}.")
        return cls(
            data["type"],
            data["decision"],
            data["outcome"],
            data["reason"],
            data["human"],
            data["receipt_hash"],
            data["grant_id"],
            data["actors"],
            data["task_path"],
            data["request"],
            data["details"],
            data["trace_id"],
            time=data["time"],
        )


_FIELD_NAMES: Final = (
    "type",
    "time",
    "decision",
    "outcome",
    "reason",
    "human",
    "receipt_hash",
    "grant_id",
    "actors",
    "task_path",
    "request",
    "details",
    "trace_id",
)
_DICT_KEYS: Final = frozenset({*_FIELD_NAMES, "v"})
# The last member of the canonical text, ``v``, and the closing brace.
_VERSION_TAIL: Final = f',"v":{EVENT_VERSION}}}'


# The setter of each slot of ``AuditEvent``.  ``__post_init__`` and
# ``_replace_time`` call them directly, which skips the attribute lookup that
# ``object.__setattr__`` makes to find the same descriptor.
(
    _SET_TYPE, _SET_DECISION, _SET_OUTCOME, _SET_REASON, _SET_HUMAN,
    _SET_RECEIPT_HASH, _SET_GRANT_ID, _SET_ACTORS, _SET_TASK_PATH, _SET_REQUEST,
    _SET_DETAILS, _SET_TRACE_ID, _SET_TIME,
) = (
    AuditEvent.__dict__[name].__set__
    for name in ("type", "decision", "outcome", "reason", "human",
                 "receipt_hash", "grant_id", "actors", "task_path", "request",
                 "details", "trace_id", "time")
)  # fmt: skip


def _replace_time(event: AuditEvent, now: float) -> AuditEvent:
    # The other fields were validated and frozen when ``event`` was built, so the
    # copy takes them as they are and validates only the new time.  Every field
    # of ``_FIELD_NAMES`` is set here.
    copy = object.__new__(AuditEvent)
    _SET_TYPE(copy, event.type)
    _SET_DECISION(copy, event.decision)
    _SET_OUTCOME(copy, event.outcome)
    _SET_REASON(copy, event.reason)
    _SET_HUMAN(copy, event.human)
    _SET_RECEIPT_HASH(copy, event.receipt_hash)
    _SET_GRANT_ID(copy, event.grant_id)
    _SET_ACTORS(copy, event.actors)
    _SET_TASK_PATH(copy, event.task_path)
    _SET_REQUEST(copy, event.request)
    _SET_DETAILS(copy, event.details)
    _SET_TRACE_ID(copy, event.trace_id)
    _SET_TIME(copy, now)
    copy._check_time()
    return copy
