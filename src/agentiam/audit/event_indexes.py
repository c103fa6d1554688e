"""The rows of an audit event in ``audit_event_tasks`` and ``audit_event_actors``.

The append path writes these rows and ``verify_log`` recomputes them to find
edited index tables, so both derive them here from the event.
"""

from __future__ import annotations

from agentiam.audit.events import AuditEvent

# A row of ``audit_event_tasks``: (seq, task_id, depth).
TaskRow = tuple[int, str, int]
# A row of ``audit_event_actors``: (seq, actor).
ActorRow = tuple[int, str]


def task_rows(seq: int, event: AuditEvent) -> list[TaskRow]:
    """Return the ``audit_event_tasks`` rows of event ``seq``.

    There is one row per distinct task of ``task_path``, and a task that occurs
    more than once keeps the depth of its last position.
    """
    path = {task: depth for depth, task in enumerate(event.task_path)}
    return [(seq, task, depth) for task, depth in path.items()]


def actor_rows(seq: int, event: AuditEvent) -> list[ActorRow]:
    """Return the ``audit_event_actors`` rows of event ``seq``.

    There is one row per distinct actor, so a repeated actor keeps only its first
    position.
    """
    return [(seq, actor) for actor in dict.fromkeys(event.actors)]
