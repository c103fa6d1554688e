"""Settings and a ``ServerContext`` for CLI commands, from the common flags.

Verb parsers get ``--config``, ``--data-dir`` and ``--database-url`` from
``add_common_arguments`` and ``--output`` from ``add_output_argument``.
``open_cli_context(args)`` loads the settings and opens the context against
the data directory, running the migrations.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Mapping

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from agentiam.api.context import ServerContext, close_context, open_context
from agentiam.config import Settings, load_settings
from agentiam.errors import AgentIAMError
from agentiam.storage.engine import create_engine
from agentiam.storage.files import sqlite_database_file
from agentiam.storage.migrate import VERSION_TABLE


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config``, ``--data-dir`` and ``--database-url`` to a verb parser."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: $AGENTIAM_CONFIG, else none)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory of the database and keys (default: ./agentiam-data)",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="database URL (default: SQLite in the data directory)",
    )


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--output text|json`` after the verb (it may also precede the noun)."""
    # SUPPRESS keeps the value given before the noun when the flag is not repeated.
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="result format on stdout (default: text)",
    )


def settings_from_args(
    args: argparse.Namespace, overrides: Mapping[str, object] | None = None
) -> Settings:
    """Load the settings: defaults < file < environment < these flags."""
    flags: dict[str, object] = {
        "data_dir": getattr(args, "data_dir", None),
        "database_url": getattr(args, "database_url", None),
    }
    flags.update(overrides or {})
    return load_settings(config_file=getattr(args, "config", None), overrides=flags)


# The verbs that may create the data directory and its database.  Every other
# command, such as a list, a revocation or an audit check, needs an existing one.
CREATING_VERBS = frozenset({"add", "create"})


class MissingDatabaseError(AgentIAMError):
    """The database that a command needs does not exist or has no agentiam tables."""


def require_database(settings: Settings) -> None:
    """Raise ``MissingDatabaseError`` unless the database has agentiam's tables.

    A SQLite file must exist.  Another database, such as a PostgreSQL schema,
    must have the migrations' version table, so that a mistyped database or
    schema name is not set up afresh.  An in-memory SQLite database is new by
    definition and is not checked.
    """
    url = settings.database_url
    if url.startswith("sqlite"):
        database = sqlite_database_file(url)
        if database is not None and not database.is_file():
            raise MissingDatabaseError(
                f"database file {str(database)!r} does not exist; check "
                "--data-dir or --database-url"
            )
        return

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            initialized = inspect(conn).has_table(VERSION_TABLE)
    finally:
        engine.dispose()
    if not initialized:
        redacted = make_url(url).render_as_string(hide_password=True)
        raise MissingDatabaseError(
            f"database {redacted!r} has no agentiam tables; check --database-url, "
            "or run 'agentiam serve' or an add command on it first"
        )


@contextlib.contextmanager
def open_cli_context(
    args: argparse.Namespace,
    *,
    rebuild_audit_nodes: bool = True,
    require_existing: bool | None = None,
) -> Iterator[ServerContext]:
    """Open a ``ServerContext`` for one CLI command and close it afterwards.

    With ``require_existing``, a SQLite database that does not exist raises
    ``MissingDatabaseError`` instead of being created empty, so a mistyped
    ``--data-dir`` cannot pass for an empty one.  By default only the verbs in
    ``CREATING_VERBS`` may create it.
    """
    if require_existing is None:
        require_existing = getattr(args, "verb", None) not in CREATING_VERBS
    settings = settings_from_args(args)
    if require_existing:
        require_database(settings)

    ctx = open_context(settings, rebuild_audit_nodes=rebuild_audit_nodes)
    try:
        yield ctx
    finally:
        close_context(ctx)
