"""The task tree: units of just-in-time access that own the tokens issued for them."""

from __future__ import annotations

from agentiam.tasks.store import CLOSED, EXPIRED, OPEN, Task, TaskStore, task_store

__all__ = ["CLOSED", "EXPIRED", "OPEN", "Task", "TaskStore", "task_store"]
