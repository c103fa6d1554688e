"""The periodic sweep that marks expired tasks and revokes them."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from agentiam.tasks.store import task_store

if TYPE_CHECKING:
    from agentiam.api.context import ServerContext

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0


async def sweep_once(ctx: ServerContext) -> list[str]:
    """Mark open tasks past their expiry as expired, revoke them, return their ids."""
    store = task_store(ctx.engine, ctx.revocations)
    now = ctx.clock()

    def work(conn: Connection) -> list[str]:
        expired = store.sweep_in(conn, now)
        ctx.revocations.purge_in(conn, now)
        return expired

    return await ctx.writer.submit(work)


async def run_sweeper(ctx: ServerContext, interval: float = SWEEP_INTERVAL) -> None:
    """Run ``sweep_once`` every ``interval`` seconds until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            expired = await sweep_once(ctx)
        except Exception:
            logger.exception("Failed to sweep expired tasks")
            continue
        if expired:
            logger.info("Expired tasks revoked", extra={"tasks": len(expired)})
