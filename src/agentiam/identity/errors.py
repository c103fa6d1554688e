"""Errors of the identity package.

Validation errors are also ``InvalidRequestError`` so that the API answers them as a
400 ``invalid_request`` whose description names the bad value.  A missing agent
class is a ``NotFoundError``, returned as 404 ``not_found``.
"""

from __future__ import annotations

from agentiam.errors import AgentIAMError, InvalidRequestError, NotFoundError


class IdentityError(AgentIAMError):
    """Base class of the identity package's errors."""


class InvalidUserError(IdentityError, InvalidRequestError):
    """A user field is invalid, or the login is already taken."""


class UnknownUserError(IdentityError, InvalidRequestError):
    """No user has this id or login."""


class InvalidAgentClassError(IdentityError, InvalidRequestError):
    """An agent class field is invalid, or the name is already taken."""


class UnknownAgentClassError(IdentityError, NotFoundError):
    """No agent class has this name.

    A not-found error, because the routes that name a class return 404 for a
    missing one.
    """


class InvalidClientRegistrationError(IdentityError, InvalidRequestError):
    """A resource-server client field is invalid, or the client id is taken."""


class PasswordHashError(IdentityError):
    """A stored password hash cannot be decoded."""
