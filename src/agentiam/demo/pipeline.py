"""The scripted multi-agent support pipeline that ``make demo`` runs.

A human approves a grant for a support orchestrator; the orchestrator works a ticket,
spawns a refund worker with narrowed authority, the worker's refunds are judged by the
support API, the task closes, and the audit trail is printed and verified.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentiam.client import Agent, DelegatedToken
from agentiam.client.audit import verify_event_inclusion
from agentiam.demo import processes
from agentiam.demo.support_api import AUDIENCE, REVOCATION_POLL_INTERVAL

HUMAN = "alice"
HUMAN_PASSWORD = "correct horse battery staple"  # noqa: S105 - demo-only account
AUDITOR = "auditor"
ORCHESTRATOR = "support-orchestrator"
WORKER = "refund-worker"
REFUND_LIMIT = {"amount": "100.00", "currency": "EUR"}
WORKER_LIMIT = {"amount": "50.00", "currency": "EUR"}


class StepFailedError(Exception):
    """A demo step did not behave as expected."""


@dataclass
class Report:
    """The readable lines of the run and whether every step behaved."""

    failures: list[str] = field(default_factory=list)

    def expect(self, ok: bool, text: str, detail: str = "") -> None:
        """Print one step line and remember a failure."""
        mark = "ok  " if ok else "FAIL"
        suffix = f"  ({detail})" if detail else ""
        print(f"[{mark}] {text}{suffix}", flush=True)
        if not ok:
            self.failures.append(text)


@dataclass
class Deployment:
    """The running server, the support API and what set-up created."""

    data_dir: Path
    issuer: str
    api_url: str
    join_token: str
    processes: list[subprocess.Popen[bytes]]


def set_up(work_dir: Path, report: Report) -> Deployment:
    """Create the human, the agent classes and the API client, then start servers."""
    data_dir = work_dir / "data"
    env = processes.cli_env(data_dir, {"AGENTIAM_PASSWORD": HUMAN_PASSWORD})
    server_port = processes.free_port()
    issuer = f"http://127.0.0.1:{server_port}"
    env["AGENTIAM_ISSUER"] = issuer

    processes.run_cli(["user", "add", HUMAN], env)
    processes.run_cli(["user", "add", AUDITOR, "--admin"], env)
    processes.run_cli(
        [
            "agent-class", "add", ORCHESTRATOR,
            "--owner", HUMAN,
            "--scopes", "tickets", "crm", "refunds",
            "--audiences", AUDIENCE,
            "--may-spawn", WORKER,
            "--max-depth", "2",
            "--default-ttl", "300",
            "--max-ttl", "1800",
        ],
        env,
    )  # fmt: skip
    processes.run_cli(
        [
            "agent-class", "add", WORKER,
            "--owner", HUMAN,
            "--scopes", "refunds",
            "--audiences", AUDIENCE,
            "--max-depth", "2",
            "--default-ttl", "300",
            "--max-ttl", "900",
        ],
        env,
    )  # fmt: skip
    join = processes.run_cli(["join-token", "create", ORCHESTRATOR], env)
    client = processes.run_cli(
        ["client", "add", "support-api", "--audience", AUDIENCE], env
    )
    report.expect(
        True, f"Set up human '{HUMAN}', classes '{ORCHESTRATOR}' and '{WORKER}'"
    )

    server = processes.start_server(data_dir, server_port, work_dir / "server.log")
    api_port = processes.free_port()
    api = processes.start_support_api(
        api_port,
        issuer=issuer,
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        log_path=work_dir / "support-api.log",
    )
    report.expect(True, f"Started agentiam at {issuer} and the support API")
    return Deployment(
        data_dir=data_dir,
        issuer=issuer,
        api_url=f"http://127.0.0.1:{api_port}",
        join_token=join["join_token"],
        processes=[api, server],
    )


async def log_in(http: httpx.AsyncClient, issuer: str, login: str) -> dict[str, str]:
    """Log in as ``login`` and return the session's Authorization header."""
    response = await http.post(
        f"{issuer}/v1/sessions", json={"login": login, "password": HUMAN_PASSWORD}
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['session_token']}"}


async def approve_as_human(http: httpx.AsyncClient, issuer: str) -> str:
    """Log in as the human, wait for the pending request and approve it."""
    headers = await log_in(http, issuer, HUMAN)

    for _ in range(100):
        pending = await http.get(f"{issuer}/v1/approvals", headers=headers)
        pending.raise_for_status()
        requests = pending.json()["approvals"]
        if requests:
            break
        await asyncio.sleep(0.1)
    else:
        raise StepFailedError("No approval request reached the human")

    request_id = requests[0]["id"]
    approved = await http.post(
        f"{issuer}/v1/approvals/{request_id}/approve", headers=headers
    )
    approved.raise_for_status()
    return str(requests[0].get("binding_message", ""))


async def call(
    agent: Agent, token: DelegatedToken, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """Call the support API as ``agent`` with ``token``."""
    async with httpx.AsyncClient(auth=agent.auth(token), timeout=10.0) as api:
        return await api.request(method, url, **kwargs)


def reason_of(response: httpx.Response) -> str:
    """Return the refusal reason a protected API sent."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("error_description") or body.get("error") or body)


async def run_agents(deployment: Deployment, report: Report) -> str:
    """Run the orchestrator and the worker; return the root task id."""
    issuer, api_url = deployment.issuer, deployment.api_url
    async with httpx.AsyncClient(timeout=10.0) as http:
        orchestrator = await Agent.attest(
            issuer,
            agent_class=ORCHESTRATOR,
            join_token=deployment.join_token,
            http=http,
        )
        report.expect(True, f"Orchestrator attested as {orchestrator.spiffe_id}")

        approval = asyncio.create_task(
            orchestrator.request_approval(
                login_hint=HUMAN,
                scope="tickets crm refunds",
                audience=[AUDIENCE],
                authorization_details=[
                    {
                        "type": "refund",
                        "actions": ["create"],
                        "max_amount": REFUND_LIMIT,
                    }
                ],
                max_depth=2,
                expires_in=1800,
                binding_message="Work ticket T-1001: double charge on O-77",
            )
        )
        message = await approve_as_human(http, issuer)
        token = await approval
        report.expect(True, f"'{HUMAN}' approved the grant: {message}")
        report.expect(
            True,
            f"Orchestrator holds a delegated token for task {token.task_id} "
            f"(scope '{token.scope}')",
        )

        ticket = await call(orchestrator, token, "GET", f"{api_url}/tickets/T-1001")
        report.expect(
            ticket.status_code == 200,
            "Orchestrator reads ticket T-1001",
            f"HTTP {ticket.status_code}",
        )
        customer = await call(
            orchestrator, token, "GET", f"{api_url}/crm/customers/C-42"
        )
        report.expect(
            customer.status_code == 200,
            "Orchestrator looks up customer C-42",
            f"HTTP {customer.status_code}",
        )

        worker = await orchestrator.spawn(WORKER, token)
        report.expect(True, f"Orchestrator spawned {worker.spiffe_id}")
        worker_token = await worker.exchange(
            token,
            scope="refunds",
            audience=[AUDIENCE],
            authorization_details=[
                {"type": "refund", "actions": ["create"], "max_amount": WORKER_LIMIT}
            ],
            lifetime=120,
            purpose="Refund the double charge on O-77",
        )
        report.expect(
            True,
            f"Worker exchanged for task {worker_token.task_id}: scope "
            f"'{worker_token.scope}', refunds up to 50 EUR",
        )

        await worker_steps(worker, worker_token, api_url, report)

        task_id = token.task_id
        if task_id is None:
            raise StepFailedError("The first delegated token names no task")
        await orchestrator.close_task(task_id, token)
        report.expect(True, f"Orchestrator closed task {task_id}")
        await refused_after_close(worker, worker_token, api_url, report)
        await prove_last_refusal(http, issuer, worker_token, report)
        return task_id


async def worker_steps(
    worker: Agent, token: DelegatedToken, api_url: str, report: Report
) -> None:
    """Make the worker's three calls and check each outcome."""
    refund = {"ticket": "T-1001", "currency": "EUR"}
    small = await call(
        worker, token, "POST", f"{api_url}/refunds", json={**refund, "amount": "30.00"}
    )
    report.expect(
        small.status_code == 201,
        "Worker refunds 30 EUR: allowed",
        f"HTTP {small.status_code}",
    )

    large = await call(
        worker, token, "POST", f"{api_url}/refunds", json={**refund, "amount": "80.00"}
    )
    report.expect(
        large.status_code == 403,
        "Worker refunds 80 EUR: refused",
        f"HTTP {large.status_code}: {reason_of(large)}",
    )

    export = await call(worker, token, "GET", f"{api_url}/crm/export")
    report.expect(
        export.status_code == 403,
        "Worker exports the CRM: refused",
        f"HTTP {export.status_code}: {reason_of(export)}",
    )


async def refused_after_close(
    worker: Agent, token: DelegatedToken, api_url: str, report: Report
) -> None:
    """Check that the worker's token is refused once the API has polled the feed."""
    # The API polls the revocation feed every REVOCATION_POLL_INTERVAL seconds, so
    # after two intervals the closed task's entry has reached it.
    await asyncio.sleep(2 * REVOCATION_POLL_INTERVAL)
    refund = {"ticket": "T-1001", "currency": "EUR", "amount": "10.00"}
    response = await call(worker, token, "POST", f"{api_url}/refunds", json=refund)
    report.expect(
        response.status_code == 401,
        "Worker's token after the task closed: refused",
        f"HTTP {response.status_code}: {reason_of(response)}",
    )


async def prove_last_refusal(
    http: httpx.AsyncClient, issuer: str, token: DelegatedToken, report: Report
) -> None:
    """As an auditor, prove the worker's last refused request is in the signed log.

    The proof is checked by the SDK against a tree head signed with the server's
    published key, so a server that dropped or edited the event would fail it.
    """
    headers = await log_in(http, issuer, AUDITOR)
    query = {"task": token.task_id or "", "decision": "deny", "limit": "100"}
    refusals: list[dict[str, Any]] = []
    # The API sends its decisions in batches about once a second.
    for _ in range(50):
        found = await http.get(
            f"{issuer}/v1/audit/events", params=query, headers=headers
        )
        found.raise_for_status()
        refusals = found.json()["events"]
        if any(item["event"]["request"].get("status") == 401 for item in refusals):
            break
        await asyncio.sleep(0.1)
    else:
        raise StepFailedError("The worker's refused request never reached the log")

    last = refusals[-1]
    signed = await http.post(f"{issuer}/v1/audit/tree-heads", headers=headers)
    signed.raise_for_status()
    check = await verify_event_inclusion(
        http, issuer, last["seq"], last["event"], headers=headers
    )
    report.expect(
        True,
        f"Inclusion proof of the worker's last refused request (event #{check.seq}) "
        f"verified against the tree head of size {check.tree_size} "
        f"signed by key '{check.kid}'",
    )


def show_audit(deployment: Deployment, task_id: str, report: Report) -> None:
    """Print the task's audit trail as a tree and verify the log."""
    env = processes.cli_env(deployment.data_dir, {"AGENTIAM_ISSUER": deployment.issuer})
    print(f"\nAudit trail of task {task_id}:", flush=True)
    trail = subprocess.run(  # noqa: S603 - a fixed interpreter and our own CLI
        [sys.executable, "-m", "agentiam.cli.main", "audit", "trail", task_id],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    print(trail.stdout, end="", flush=True)
    report.expect(trail.returncode == 0, "Printed the audit trail")

    verify = subprocess.run(
        [sys.executable, "-m", "agentiam.cli.main", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    detail = (verify.stdout or verify.stderr).strip().splitlines()
    report.expect(
        verify.returncode == 0, "Verified the audit log", detail[-1] if detail else ""
    )


def main() -> int:
    """Run the demo and return 0 when every step behaved as expected."""
    report = Report()
    with tempfile.TemporaryDirectory(prefix="agentiam-demo-") as work:
        work_dir = Path(work)
        deployment = set_up(work_dir, report)
        try:
            task_id = asyncio.run(run_agents(deployment, report))
        except Exception as err:
            report.expect(False, "Agent pipeline", f"{type(err).__name__}: {err}")
            task_id = None
        finally:
            for process in deployment.processes:
                processes.stop(process)
        if task_id is not None:
            show_audit(deployment, task_id, report)

    if report.failures:
        print(f"\n{len(report.failures)} step(s) failed.", flush=True)
        return 1
    print("\nEvery step behaved as expected.", flush=True)
    return 0
