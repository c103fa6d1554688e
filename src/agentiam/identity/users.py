"""The built-in directory of humans."""

from __future__ import annotations

import builtins
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select, update

from agentiam.identity.errors import InvalidUserError, UnknownUserError
from agentiam.identity.tables import users
from agentiam.revocation.by_id import Revoked, revoke_user_grants_in

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

# A login is what a human types and what a CIBA login_hint carries.
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,127}$")
_MAX_DISPLAY_NAME = 256


@dataclass(frozen=True, slots=True)
class User:
    """A human of the built-in directory; the password hash is never exposed."""

    id: str
    login: str
    display_name: str
    disabled: bool
    admin: bool
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON view of the user."""
        return {
            "id": self.id,
            "login": self.login,
            "display_name": self.display_name,
            "disabled": self.disabled,
            "admin": self.admin,
            "created_at": self.created_at,
        }


def validate_login(login: str) -> None:
    """Check that a login is 1 to 128 of a-z, 0-9, '.', '_', '@', '-'.

    Raises:
        InvalidUserError: naming the login.
    """
    if not _LOGIN.fullmatch(login):
        raise InvalidUserError(
            f"Invalid login '{login}': expected 1 to 128 characters of a-z, 0-9, "
            "'.', '_', '@' and '-', starting with a letter or digit."
        )


def new_user_id() -> str:
    """Return a fresh random user id."""
    return "usr_" + secrets.token_hex(12)


def _to_user(row: Any) -> User:
    return User(
        id=row.id,
        login=row.login,
        display_name=row.display_name,
        disabled=bool(row.disabled),
        admin=bool(row.admin),
        created_at=float(row.created_at),
    )


class UserStore:
    """Reads and writes the users table.

    Reads use the engine; writes are ``*_in`` methods that run inside a unit of work
    given to ``GroupCommitWriter.submit`` or ``run_sync``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_in(
        self,
        conn: Connection,
        *,
        login: str,
        password_hash: str,
        now: float,
        display_name: str | None = None,
        admin: bool = False,
    ) -> User:
        """Insert a user; hash the password beforehand with ``hash_password``.

        Raises:
            InvalidUserError: the login or display name is invalid or the login is
                taken.
        """
        validate_login(login)
        name = login if display_name is None else display_name
        if not name or len(name) > _MAX_DISPLAY_NAME:
            raise InvalidUserError(
                f"Invalid display name '{name}': expected 1 to "
                f"{_MAX_DISPLAY_NAME} characters."
            )

        taken = conn.execute(select(users.c.id).where(users.c.login == login))
        if taken.first() is not None:
            raise InvalidUserError(f"User '{login}' already exists.")

        user = User(
            id=new_user_id(),
            login=login,
            display_name=name,
            disabled=False,
            admin=admin,
            created_at=now,
        )
        conn.execute(
            users.insert().values(
                id=user.id,
                login=user.login,
                display_name=user.display_name,
                password_hash=password_hash,
                disabled=False,
                admin=admin,
                created_at=now,
            )
        )
        return user

    def disable_in(self, conn: Connection, user_id: str) -> User:
        """Mark a user disabled; the user can no longer log in.

        Raises:
            UnknownUserError: no user has this id.
        """
        conn.execute(update(users).where(users.c.id == user_id).values(disabled=True))
        row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise UnknownUserError(f"User '{user_id}' was not found.")
        return _to_user(row)

    def get(self, user_id: str) -> User | None:
        """Return the user with this id, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return None if row is None else _to_user(row)

    def find_by_login(self, login: str) -> User | None:
        """Return the user with this login, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.login == login)).first()
        return None if row is None else _to_user(row)

    def require_by_login(self, login: str) -> User:
        """Return the user with this login.

        Raises:
            UnknownUserError: no user has this login.
        """
        user = self.find_by_login(login)
        if user is None:
            raise UnknownUserError(f"User '{login}' was not found.")
        return user

    def password_hash(self, login: str) -> tuple[User, str] | None:
        """Return the user with this login and its stored hash, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.login == login)).first()
        if row is None:
            return None
        return _to_user(row), str(row.password_hash)

    def list(self) -> builtins.list[User]:
        """Return every user, ordered by login."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.login)).all()
        return [_to_user(row) for row in rows]


def disable_user_in(
    conn: Connection,
    ctx: ServerContext,
    user_id: str,
    *,
    disabled_by: str,
    now: float,
) -> tuple[User, builtins.list[Revoked]]:
    """Disable a user and revoke every active grant they approved, in one unit.

    A disabled human's delegations end with the login: each grant gets a
    revocation entry and a ``grant.revoked`` event, so the token exchange and
    resource servers refuse its tokens.  Session tokens carry no grant;
    ``require_session`` loads the user on every use and refuses a disabled one.

    Returns:
        The disabled user and one ``Revoked`` per grant revoked.

    Raises:
        UnknownUserError: no user has this id.
    """
    user = UserStore(ctx.engine).disable_in(conn, user_id)
    revoked = revoke_user_grants_in(
        conn,
        ctx,
        user_id=user_id,
        revoked_by=disabled_by,
        now=now,
        reason="user disabled",
    )
    return user, revoked


MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def validate_password(password: str) -> None:
    """Check that a new password has 12 to 1024 characters.

    Raises:
        InvalidUserError: stating the length rule, never the password.
    """
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidUserError(
            f"Invalid password: expected {MIN_PASSWORD_LENGTH} to "
            f"{MAX_PASSWORD_LENGTH} characters, got {len(password)}."
        )
