"""OCSF: map stored audit events to Open Cybersecurity Schema Framework objects.

The target is OCSF schema ``OCSF_VERSION``.  Each event type maps to one class and
activity, and ``type_uid`` is always ``class_uid * 100 + activity_id``:

==========================  ================================  ======================
event type                  class (class_uid, category_uid)   activity (activity_id)
==========================  ================================  ======================
session.created             Authentication (3002, 3)          Logon (1)
session.refused             Authentication (3002, 3)          Logon (1)
agent.attested              Authentication (3002, 3)          Logon (1)
agent.attest_refused        Authentication (3002, 3)          Logon (1)
agent.renewed               Authentication (3002, 3)          Logon (1)
agent.renew_refused         Authentication (3002, 3)          Logon (1)
agent.spawned               Authentication (3002, 3)          Logon (1)
agent.spawn_refused         Authentication (3002, 3)          Logon (1)
session.revoked             Authentication (3002, 3)          Logoff (2)
grant.approved              Authorize Session (3003, 3)       Assign Privileges (1)
approval.denied             Authorize Session (3003, 3)       Assign Privileges (1)
token.issued                Authorize Session (3003, 3)       Assign Privileges (1)
token.exchanged             Authorize Session (3003, 3)       Assign Privileges (1)
token.exchange_refused      Authorize Session (3003, 3)       Assign Privileges (1)
approval.requested          Authorize Session (3003, 3)       Other (99)
grant.revoked               Authorize Session (3003, 3)       Other (99)
instance.revoked            Authorize Session (3003, 3)       Other (99)
task.opened, task.closed    Authorize Session (3003, 3)       Other (99)
token.introspected          Authorize Session (3003, 3)       Other (99)
token.revoked               Authorize Session (3003, 3)       Other (99)
decision                    API Activity (6003, 6)            from the HTTP method:
                                                              POST Create (1), GET
                                                              and HEAD Read (2), PUT
                                                              and PATCH Update (3),
                                                              DELETE Delete (4), else
                                                              Other (99)
any other type              Base Event (0, 0)                 Other (99)
==========================  ================================  ======================

``key.rotated`` has no OCSF class that fits closely, so it is a Base Event too.

The status is Failure (2) when the event's decision is ``deny`` and Success (1)
otherwise, and the severity is Medium (3) for a failure and Informational (1)
otherwise.  ``actor.user`` is the human the authority comes from,
``actor.app_uid`` is the acting agent instance, and ``actor.authorizations``
holds the decision and the grant.  The whole delegation chain, and every other
field, is in ``unmapped``, which holds the stored event exactly as
``agentiam audit export`` writes it: ``seq``, ``leaf_hash``, ``chain_hash`` and
``event``.  ``metadata.uid`` is the leaf hash (base64url) and
``metadata.sequence`` the seq, so a SIEM can check an event against the log.

This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from agentiam import __version__
from agentiam.audit.chain import b64url

if TYPE_CHECKING:
    from agentiam.audit.events import AuditEvent
    from agentiam.audit.log import StoredEvent

OCSF_VERSION: Final = "1.3.0"
PRODUCT_NAME: Final = "agentiam"
VENDOR_NAME: Final = "agentiam"

STATUS_SUCCESS: Final = 1
STATUS_FAILURE: Final = 2
SEVERITY_INFORMATIONAL: Final = 1
SEVERITY_MEDIUM: Final = 3
ACTIVITY_OTHER: Final = 99


@dataclass(frozen=True, slots=True)
class OCSFClass:
    """One OCSF event class: its uid, name and the category it belongs to."""

    class_uid: int
    class_name: str
    category_uid: int
    category_name: str


BASE_EVENT: Final = OCSFClass(0, "Base Event", 0, "Uncategorized")
AUTHENTICATION: Final = OCSFClass(
    3002, "Authentication", 3, "Identity & Access Management"
)
AUTHORIZE_SESSION: Final = OCSFClass(
    3003, "Authorize Session", 3, "Identity & Access Management"
)
API_ACTIVITY: Final = OCSFClass(6003, "API Activity", 6, "Application Activity")

_ACTIVITY_NAMES: Final[Mapping[int, Mapping[int, str]]] = {
    AUTHENTICATION.class_uid: {1: "Logon", 2: "Logoff", ACTIVITY_OTHER: "Other"},
    AUTHORIZE_SESSION.class_uid: {1: "Assign Privileges", ACTIVITY_OTHER: "Other"},
    API_ACTIVITY.class_uid: {
        1: "Create",
        2: "Read",
        3: "Update",
        4: "Delete",
        ACTIVITY_OTHER: "Other",
    },
    BASE_EVENT.class_uid: {ACTIVITY_OTHER: "Other"},
}

# Event type -> (class, activity_id).  ``decision`` is absent because its activity
# comes from the request's HTTP method.
EVENT_CLASSES: Final[Mapping[str, tuple[OCSFClass, int]]] = {
    "session.created": (AUTHENTICATION, 1),
    "session.refused": (AUTHENTICATION, 1),
    "agent.attested": (AUTHENTICATION, 1),
    "agent.attest_refused": (AUTHENTICATION, 1),
    "agent.renewed": (AUTHENTICATION, 1),
    "agent.renew_refused": (AUTHENTICATION, 1),
    "agent.spawned": (AUTHENTICATION, 1),
    "agent.spawn_refused": (AUTHENTICATION, 1),
    "session.revoked": (AUTHENTICATION, 2),
    "grant.approved": (AUTHORIZE_SESSION, 1),
    "approval.denied": (AUTHORIZE_SESSION, 1),
    "token.issued": (AUTHORIZE_SESSION, 1),
    "token.exchanged": (AUTHORIZE_SESSION, 1),
    "token.exchange_refused": (AUTHORIZE_SESSION, 1),
    "approval.requested": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "grant.revoked": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "instance.revoked": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "task.opened": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "task.closed": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "token.introspected": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
    "token.revoked": (AUTHORIZE_SESSION, ACTIVITY_OTHER),
}

_METHOD_ACTIVITIES: Final[Mapping[str, int]] = {
    "POST": 1,
    "GET": 2,
    "HEAD": 2,
    "PUT": 3,
    "PATCH": 3,
    "DELETE": 4,
}


def classify(event: AuditEvent) -> tuple[OCSFClass, int]:
    """Return the OCSF class and activity_id of an event (see the module table)."""
    if event.type == "decision":
        method = event.request.get("method")
        activity = _METHOD_ACTIVITIES.get(str(method), ACTIVITY_OTHER)
        return API_ACTIVITY, activity
    return EVENT_CLASSES.get(event.type, (BASE_EVENT, ACTIVITY_OTHER))


def to_ocsf(stored: StoredEvent) -> dict[str, Any]:
    """Return the OCSF object of one stored audit event.

    Raises:
        ValueError: the event has no ``time``.  Stored events always have one.
    """
    event = stored.event
    if event.time is None:
        raise ValueError(f"Audit event {stored.seq} has no time.")
    ocsf_class, activity_id = classify(event)
    failed = event.decision == "deny"

    record: dict[str, Any] = {
        **_class_fields(ocsf_class, activity_id),
        **_status_fields(event, failed),
        "time": round(event.time * 1000),
        "message": f"{event.type} {event.outcome}".strip(),
        "metadata": _metadata(stored),
        "actor": _actor(event),
    }
    record.update(_class_specific(ocsf_class, event))

    record["unmapped"] = _unmapped(stored)
    return record


def _class_fields(ocsf_class: OCSFClass, activity_id: int) -> dict[str, Any]:
    activity_name = _ACTIVITY_NAMES[ocsf_class.class_uid][activity_id]
    return {
        "category_uid": ocsf_class.category_uid,
        "category_name": ocsf_class.category_name,
        "class_uid": ocsf_class.class_uid,
        "class_name": ocsf_class.class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": ocsf_class.class_uid * 100 + activity_id,
        "type_name": f"{ocsf_class.class_name}: {activity_name}",
    }


def _status_fields(event: AuditEvent, failed: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "severity_id": SEVERITY_MEDIUM if failed else SEVERITY_INFORMATIONAL,
        "severity": "Medium" if failed else "Informational",
        "status_id": STATUS_FAILURE if failed else STATUS_SUCCESS,
        "status": "Failure" if failed else "Success",
    }
    if event.outcome:
        fields["status_code"] = event.outcome
    if event.reason is not None:
        fields["status_detail"] = event.reason
    return fields


def _metadata(stored: StoredEvent) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {
            "name": PRODUCT_NAME,
            "vendor_name": VENDOR_NAME,
            "version": __version__,
        },
        "uid": b64url(stored.leaf_hash),
        "sequence": stored.seq,
        "log_name": "audit",
    }
    if stored.event.trace_id is not None:
        metadata["correlation_uid"] = stored.event.trace_id
    return metadata


def _actor(event: AuditEvent) -> dict[str, Any]:
    actor: dict[str, Any] = {}
    if event.human is not None:
        actor["user"] = _user(event.human, type_id=1, type_name="User")
    if event.actors:
        actor["app_uid"] = event.actors[0]
    authorization: dict[str, Any] = {"decision": event.decision}
    if event.grant_id is not None:
        authorization["policy"] = {"uid": event.grant_id, "name": "grant"}
    actor["authorizations"] = [authorization]
    if event.task_id is not None:
        actor["session"] = {"uid": event.task_id}
    return actor


def _user(uid: str, *, type_id: int, type_name: str) -> dict[str, Any]:
    return {"uid": uid, "name": uid, "type_id": type_id, "type": type_name}


def _class_specific(ocsf_class: OCSFClass, event: AuditEvent) -> dict[str, Any]:
    if ocsf_class is AUTHENTICATION:
        return _authentication(event)
    if ocsf_class is AUTHORIZE_SESSION:
        return _authorize_session(event)
    if ocsf_class is API_ACTIVITY:
        return _api_activity(event)
    return {}


def _authentication(event: AuditEvent) -> dict[str, Any]:
    # The user who logs on is the human for a session and the agent instance for
    # an attestation, so the record names the identity that authenticated.
    if event.type.startswith("agent.") and event.actors:
        return {"user": _user(event.actors[0], type_id=99, type_name="Agent")}
    if event.human is not None:
        return {"user": _user(event.human, type_id=1, type_name="User")}
    return {}


def _authorize_session(event: AuditEvent) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if event.human is not None:
        fields["user"] = _user(event.human, type_id=1, type_name="User")
    scope = event.details.get("scope")
    if isinstance(scope, str) and scope:
        fields["privileges"] = scope.split()
    if event.task_id is not None:
        fields["session"] = {"uid": event.task_id}
    return fields


def _api_activity(event: AuditEvent) -> dict[str, Any]:
    # NOTE: a decision event does not record the caller's address, so the OCSF
    # src_endpoint object is left out.
    request = event.request
    method = request.get("method")
    path = request.get("path") or request.get("endpoint")
    api: dict[str, Any] = {
        "operation": " ".join(part for part in (method, path) if part) or "unknown"
    }
    if event.trace_id is not None:
        api["request"] = {"uid": event.trace_id}
    status = request.get("status")
    if isinstance(status, int):
        api["response"] = {"code": status}
    audience = request.get("audience")
    if isinstance(audience, str):
        api["service"] = {"name": audience}

    fields: dict[str, Any] = {"api": api}
    if method is not None or path is not None:
        http_request: dict[str, Any] = {}
        if method is not None:
            http_request["http_method"] = method
        if path is not None:
            http_request["url"] = {"path": path}
        fields["http_request"] = http_request
    if isinstance(status, int):
        fields["http_response"] = {"code": status}
    return fields


def _unmapped(stored: StoredEvent) -> dict[str, Any]:
    return {
        "seq": stored.seq,
        "leaf_hash": b64url(stored.leaf_hash),
        "chain_hash": b64url(stored.chain_hash),
        "event": stored.event.to_dict(),
    }
