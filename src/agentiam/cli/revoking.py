"""The shared step of ``grant revoke``, ``agent revoke`` and ``session revoke``.

These commands act as the administrator, directly on the database of the data
directory. A running server reads the new entry at its next revocation refresh
(``revocation_refresh_ms``, one second by default).
"""

from __future__ import annotations

import argparse
from typing import Any

from agentiam.cli.context import open_cli_context
from agentiam.cli.output import emit, error
from agentiam.errors import AgentIAMError
from agentiam.revocation.by_id import revoke_id_in, verify_target

CLI_ACTOR = "cli"


def run_revoke(args: argparse.Namespace, kind: str, target: str) -> int:
    """Revoke ``target`` of ``kind``, print the entry and return the exit code."""
    try:
        with open_cli_context(args) as ctx:
            kind, target = verify_target(kind, target, ctx.settings)

            def work(conn: Any) -> dict[str, Any]:
                revoked = revoke_id_in(
                    conn,
                    ctx,
                    kind=kind,
                    target=target,
                    revoked_by=CLI_ACTOR,
                    now=ctx.clock(),
                )
                return revoked.to_dict()

            result = ctx.writer.run_sync(work)
    except AgentIAMError as err:
        error(str(err))
        return 1
    emit(result, output=args.output)
    return 0
