"""Token exchange commits: tasks and audit events of one writer batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from exchange_world import ISSUER, WORKER, World
from starlette.requests import Request

from agentiam.api.forms import Form
from agentiam.delegation.exchange import (
    ACCESS_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    TOKEN_EXCHANGE,
)
from agentiam.jose.dpop import create_dpop_proof
from agentiam.tasks import Task, task_store
from agentiam.tasks.errors import TaskNotOpenError


async def _exchange(world: World, subject_token: str, purpose: str) -> dict[str, Any]:
    worker = world.agent(WORKER, parent=world.orchestrator.spiffe_id)
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": worker.svid,
        "actor_token_type": JWT_TOKEN_TYPE,
        "scope": "refunds",
        "purpose": purpose,
    }
    proof = create_dpop_proof(
        worker.key, htm="POST", htu=f"{ISSUER}/token", now=world.clock()
    )
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/token",
            "headers": [(b"dpop", proof.encode())],
            "query_string": b"",
        }
    )
    return await world.handler.handle(Form(form), request, world.ctx)


async def _in_one_batch(
    world: World, *exchanges: Any, before_commit: Any = None
) -> list[Any]:
    """Run the exchanges while the writer is held, so that they share one batch.

    ``before_commit`` runs once every exchange has passed its checks and waits
    for the writer.
    """
    started = threading.Event()
    release = threading.Event()

    def hold(_conn: Any) -> None:
        started.set()
        release.wait()

    blocker = asyncio.ensure_future(world.ctx.writer.submit(hold))
    # The writer waits briefly for company after taking a unit, so exchanges
    # queued before the blocker runs could join its batch, and the blocker would
    # then wait for them forever.
    while not started.is_set():
        await asyncio.sleep(0.001)
    tasks = [asyncio.ensure_future(exchange) for exchange in exchanges]
    while world.ctx.writer._queue.qsize() < len(tasks):
        await asyncio.sleep(0.001)
    if before_commit is not None:
        before_commit()
    release.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


def _stored_task(world: World, response: dict[str, Any]) -> Task | None:
    task_id = world.verify(response["access_token"])["task"]["id"]
    return task_store(world.ctx.engine, world.ctx.revocations).get(task_id)


def test_exchange_batch_commits_tasks_and_events(world: World) -> None:
    subject = world.root_token()

    results = asyncio.run(
        _in_one_batch(world, *(_exchange(world, subject, f"P-{i}") for i in range(4)))
    )

    purposes = []
    for response in results:
        assert isinstance(response, dict)
        task = _stored_task(world, response)
        assert task is not None
        assert task.parent_id == world.root_task.id
        purposes.append(task.purpose)
    assert sorted(purposes) == ["P-0", "P-1", "P-2", "P-3"]
    assert world.audit.types() == ["token.exchanged"] * 4
    assert world.audit.appends == [4]


def test_exchange_batch_fails_closed_parent_only(world: World) -> None:
    store = task_store(world.ctx.engine, world.ctx.revocations)
    root = world.root_task
    branch = world.run(
        lambda conn: store.open_in(
            conn,
            grant_id=world.grant.id,
            parent_id=root.id,
            purpose="Branch",
            scopes=("refunds",),
            audiences=root.audiences,
            expires_at=root.expires_at,
            opened_by=world.orchestrator.spiffe_id,
            now=world.clock(),
        )
    )
    on_branch = world.root_token(task={"id": branch.id, "path": list(branch.path)})
    on_root = world.root_token()

    def close_branch() -> None:
        world.ctx.revocations.add_committed([("task", branch.id, root.expires_at)])

    # Both requests pass their checks; the branch dies before their commit.
    failed, surviving = asyncio.run(
        _in_one_batch(
            world,
            _exchange(world, on_branch, "Doomed"),
            _exchange(world, on_root, "Kept"),
            before_commit=close_branch,
        )
    )

    assert isinstance(failed, TaskNotOpenError)
    assert failed.error == "invalid_request"
    assert isinstance(surviving, dict)
    task = _stored_task(world, surviving)
    assert task is not None
    assert task.purpose == "Kept"
    assert world.audit.types() == ["token.exchanged"]


def test_exchange_batch_inserts_tasks_once(world: World) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO TASKS"):
            statements.append(statement)

    from sqlalchemy import event

    event.listen(world.ctx.engine, "before_cursor_execute", count)
    try:
        subject = world.root_token()
        results = asyncio.run(
            _in_one_batch(
                world, *(_exchange(world, subject, f"P-{i}") for i in range(3))
            )
        )
    finally:
        event.remove(world.ctx.engine, "before_cursor_execute", count)

    assert all(isinstance(result, dict) for result in results)
    assert len(statements) == 1
