"""The grant cache checks the revocation set on every hit."""

from __future__ import annotations

from exchange_world import START, World

from agentiam.delegation.caches import GRANT_CACHE_SECONDS, DelegationCache
from agentiam.delegation.grants import GrantStore
from agentiam.revocation import RevocationSet
from agentiam.revocation.by_id import revoke_id_in


def _cache(world: World) -> DelegationCache:
    return DelegationCache(world.ctx.engine)


def test_cache_serves_active_grant(world: World) -> None:
    cache = _cache(world)

    first = cache.grant(world.grant.id, world.ctx.revocations)
    second = cache.grant(world.grant.id, world.ctx.revocations)

    assert first is not None
    assert second is first


def test_cache_sees_revocation_on_this_node(world: World) -> None:
    cache = _cache(world)
    cache.grant(world.grant.id, world.ctx.revocations)

    world.run(
        lambda conn: revoke_id_in(
            conn,
            world.ctx,
            kind="grant",
            target=world.grant.id,
            revoked_by="admin",
            now=world.clock(),
        )
    )
    grant = cache.grant(world.grant.id, world.ctx.revocations)

    assert grant is not None
    assert not grant.is_active(world.clock())


def test_cache_sees_revocation_by_other_process(world: World) -> None:
    cache = _cache(world)
    cache.grant(world.grant.id, world.ctx.revocations)
    other = RevocationSet(world.ctx.engine, clock=world.clock)

    def revoke(conn: object) -> None:
        GrantStore(world.ctx.engine).revoke_in(conn, world.grant.id, now=START + 1)
        other.revoke_in(conn, "grant", world.grant.id, START + 600)

    world.run(revoke)
    world.ctx.revocations.refresh()
    grant = cache.grant(world.grant.id, world.ctx.revocations)

    assert grant is not None
    assert grant.revoked_at == START + 1


def test_cache_ttl_below_entry_lifetime() -> None:
    # A revocation entry is kept for at least DROP_MARGIN (60 s) after it is written.
    assert GRANT_CACHE_SECONDS < 60
