"""Errors of the tasks package."""

from __future__ import annotations

from agentiam.errors import AgentIAMError, InvalidRequestError


class TaskError(AgentIAMError):
    """Base class of the tasks package's errors."""


class TaskBoundsError(InvalidRequestError, TaskError):
    """A child task requests scopes, audiences or a lifetime beyond its parent's."""

    description = "The task is not within its parent task."


class TaskNotOpenError(InvalidRequestError, TaskError):
    """The task is closed or expired."""

    description = "The task is not open."
