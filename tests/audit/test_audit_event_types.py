"""Every audit event type the server writes is one of ``KNOWN_TYPES``.

The test reads the source of ``agentiam`` and collects the ``type`` of every
``AuditEvent(...)`` call. A literal type must be known. A type computed at run
time must come from a call site listed in ``COMPUTED_TYPES`` with every value it
can take, so that a new computed type fails here until it is listed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import agentiam
from agentiam.audit.events import KNOWN_TYPES
from agentiam.revocation.revocation_set import KINDS

SOURCE = Path(agentiam.__file__).parent

# (module path, enclosing function) -> the types the computed value can take.
COMPUTED_TYPES: dict[tuple[str, str], frozenset[str]] = {
    # task.closed for a task, "<kind>.revoked" for every other kind.
    ("revocation/by_id.py", "_revoked_event"): frozenset(
        {"task.closed"} | {f"{kind}.revoked" for kind in KINDS - {"task"}}
    ),
    # The callers pass the type as the first argument of _event.
    ("tasks/routes.py", "_event"): frozenset({"task.opened", "task.closed"}),
}


def _event_types() -> tuple[set[str], set[tuple[str, str]]]:
    """Return the literal types and the sites whose type is computed."""
    literal: set[str] = set()
    computed: set[tuple[str, str]] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        module = path.relative_to(SOURCE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                value = _type_argument(node)
                if value is None:
                    continue
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    literal.add(value.value)
                else:
                    computed.add((module, function.name))
    return literal, computed


def _type_argument(node: ast.AST) -> ast.expr | None:
    if not isinstance(node, ast.Call):
        return None
    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
    if name != "AuditEvent":
        return None
    for keyword in node.keywords:
        if keyword.arg == "type":
            return keyword.value
    return node.args[0] if node.args else None


def _tasks_event_literals() -> set[str]:
    """Return the first argument of every ``_event(...)`` call in tasks/routes.py."""
    tree = ast.parse((SOURCE / "tasks/routes.py").read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "_event"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_event_types_literal_known() -> None:
    literal, _computed = _event_types()

    assert literal, "no AuditEvent call was found in the source"
    assert sorted(literal - KNOWN_TYPES) == []


def test_event_types_computed_sites_listed() -> None:
    _literal, computed = _event_types()

    assert sorted(computed - set(COMPUTED_TYPES)) == []


def test_event_types_computed_known() -> None:
    for site, types in COMPUTED_TYPES.items():
        assert sorted(types - KNOWN_TYPES) == [], site


def test_event_types_tasks_callers_listed() -> None:
    assert _tasks_event_literals() == COMPUTED_TYPES[("tasks/routes.py", "_event")]
