"""The ``ServerContext``: everything a route or CLI command needs, built once.

``open_context`` creates the data directory, opens the engine, runs the migrations,
starts the group-commit writer and loads the key ring, the revocation set and the
audit log.  ``close_context`` flushes the writer and disposes of the engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy

from agentiam.config import Settings
from agentiam.keys import KeyRing
from agentiam.storage.engine import create_engine
from agentiam.storage.files import prepare_data_dir
from agentiam.storage.migrate import require_schema_current, upgrade
from agentiam.storage.writer import GroupCommitWriter
from agentiam.tokens import AccessTokenClaims, SVIDClaims
from agentiam.tokens.cache import VerifiedTokenCache

if TYPE_CHECKING:
    from agentiam.audit.log import AuditLog
    from agentiam.jose.replay import ReplayCache
    from agentiam.revocation import RevocationSet

log = logging.getLogger("agentiam.api.context")


@dataclass(frozen=True)
class ServerContext:
    """The shared services of one server process."""

    settings: Settings
    engine: sqlalchemy.Engine
    writer: GroupCommitWriter
    keyring: KeyRing
    audit: AuditLog
    revocations: RevocationSet
    replay: ReplayCache
    clock: Callable[[], float] = time.time
    # Signature checks of subject and actor tokens already verified on this node.
    subject_tokens: VerifiedTokenCache[AccessTokenClaims] = field(
        default_factory=VerifiedTokenCache
    )
    actor_tokens: VerifiedTokenCache[SVIDClaims] = field(
        default_factory=VerifiedTokenCache
    )


def open_context(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
    rebuild_audit_nodes: bool = True,
) -> ServerContext:
    """Open the database and every service for ``settings`` and return the context.

    The writer is started, so ``run_sync`` and ``submit`` work at once.  Call
    ``close_context`` when done.  ``rebuild_audit_nodes`` goes to ``AuditLog``
    as ``rebuild_nodes``.
    """
    prepare_data_dir(settings.data_dir)
    engine = create_engine(settings.database_url)

    upgrade(engine)
    require_schema_current(engine)

    writer = GroupCommitWriter(
        engine,
        batch_max=settings.audit_batch_max,
        batch_wait_ms=settings.audit_batch_wait_ms,
    )
    writer.start()

    try:
        return _build(settings, engine, writer, clock, environ, rebuild_audit_nodes)
    except BaseException:
        writer.close()
        engine.dispose()
        raise


def _build(
    settings: Settings,
    engine: sqlalchemy.Engine,
    writer: GroupCommitWriter,
    clock: Callable[[], float],
    environ: Mapping[str, str] | None,
    rebuild_audit_nodes: bool,
) -> ServerContext:
    keyring = KeyRing.open(engine, settings, clock=clock, environ=environ)
    revocations = _open_revocations(engine, clock)
    audit = _open_audit(
        engine, writer, settings, keyring, clock, environ, rebuild_audit_nodes
    )
    replay = _open_replay_cache(settings)

    return ServerContext(
        settings=settings,
        engine=engine,
        writer=writer,
        keyring=keyring,
        audit=audit,
        revocations=revocations,
        replay=replay,
        clock=clock,
    )


def _open_revocations(engine: sqlalchemy.Engine, clock: Callable[[], float]) -> Any:
    from agentiam.revocation import RevocationSet

    revocations = RevocationSet(engine, clock=clock)
    revocations.load()
    return revocations


def _open_audit(
    engine: sqlalchemy.Engine,
    writer: GroupCommitWriter,
    settings: Settings,
    keyring: KeyRing,
    clock: Callable[[], float],
    environ: Mapping[str, str] | None,
    rebuild_nodes: bool,
) -> Any:
    from agentiam.audit.log import AuditLog
    from agentiam.audit.pseudonyms import AuditPseudonyms
    from agentiam.keys.kek import load_kek

    # The KeyRing has already created the KEK file if there was none, so this
    # reads the same KEK.
    kek = load_kek(settings, environ, generate=False)
    pseudonyms = AuditPseudonyms.open(engine, kek, clock=clock)
    return AuditLog(
        engine=engine,
        writer=writer,
        settings=settings,
        clock=clock,
        keyring=keyring,
        tree_head_every=settings.audit_tree_head_every,
        tree_head_interval_ms=settings.audit_tree_head_interval_ms,
        pseudonyms=pseudonyms,
        rebuild_nodes=rebuild_nodes,
    )


def _open_replay_cache(settings: Settings) -> Any:
    from agentiam.jose.replay import ReplayCache

    return ReplayCache(settings.dpop_replay_max_entries)


def close_context(ctx: ServerContext) -> None:
    """Flush and stop the writer, then release the database connections."""
    ctx.writer.close()
    ctx.engine.dispose()
    log.info("server context closed")
