"""Run agentiam's benchmarks side by side with the reference peer; write the results.

``make bench`` runs this script. Each round measures the peer (node-oidc-provider,
client-credentials tokens with wrk) and agentiam (token exchange with
bench/load_exchange.py) one after the other on the same machine, so both halves of
each ratio see the same conditions. Rounds repeat ``--runs`` times and the median is
reported with its range. A second set of rounds sends load at half of each side's
measured peak and reports p99 latency. Last, bench/middleware_overhead.py times the
enforcement middleware in-process.

Results go to bench/results/latest.md and bench/results/latest.json. When the
agentiam server cannot be set up, the peer figures are still measured and the
report states why agentiam's are missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import peer_check
import report

logger = logging.getLogger("bench.run")

BENCH_DIR = harness.BENCH_DIR
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk" / "client_credentials.lua"
LOAD_GENERATOR = BENCH_DIR / "load_exchange.py"
MIDDLEWARE_BENCH = BENCH_DIR / "middleware_overhead.py"
CEILING = BENCH_DIR / "ceiling.py"


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(harness.REPO_DIR))
    except ValueError:
        return str(path)


class Recorder:
    """Runs measurement commands, keeps their exact command lines and outputs."""

    def __init__(self, duration: float, connections: int) -> None:
        self.duration = duration
        self.connections = connections
        self.commands: dict[str, str] = {}

    def run_json(self, name: str, command: list[str], marker: str | None = None) -> Any:
        """Run a bounded command and parse its JSON result line."""
        self.commands.setdefault(name, shlex.join(relative_args(command)))
        timeout = self.duration + 120
        result = subprocess.run(  # noqa: S603 (fixed commands)
            command,
            cwd=harness.REPO_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{name} failed with exit code {result.returncode}: "
                f"{result.stderr.strip()[-2000:]}"
            )
        for line in result.stdout.splitlines():
            if marker is None and line.startswith("{"):
                return json.loads(line)
            if marker is not None and line.startswith(marker):
                return json.loads(line[len(marker) :])
        raise RuntimeError(f"{name} printed no result line: {result.stdout[-2000:]}")

    def wrk(self, wrk_path: str, issuer: str) -> dict[str, Any]:
        command = [
            wrk_path, "-t2", f"-c{self.connections}", f"-d{int(self.duration)}s",
            "--latency", "-s", str(WRK_SCRIPT), f"{issuer}/token",
        ]  # fmt: skip
        result: dict[str, Any] = self.run_json("peer_wrk", command, "BENCH_JSON ")
        result["ok_per_s"] = (
            (result["requests"] - result["errors_status"]) / result["duration_us"] * 1e6
        )
        result["latency_p50_ms"] = result["latency_p50_us"] / 1000
        result["latency_p99_ms"] = result["latency_p99_us"] / 1000
        return result

    def load(self, name: str, plan: Path, rate: float | None = None) -> dict[str, Any]:
        command = [
            sys.executable, str(LOAD_GENERATOR), str(plan),
            "--connections", str(self.connections),
            "--duration", str(self.duration),
        ]  # fmt: skip
        if rate is not None:
            command += ["--rate", f"{rate:.0f}"]
        result: dict[str, Any] = self.run_json(name, command)
        return result


def relative_args(command: list[str]) -> list[str]:
    """Show repository paths relative to its root and other programs by name."""
    out = []
    for arg in command:
        path = Path(arg)
        if path.is_absolute():
            arg = relative(path) if path.is_relative_to(harness.REPO_DIR) else path.name
        out.append(arg)
    return out


def peer_plan(issuer: str, path: Path) -> Path:
    plan = {
        "url": f"{issuer}/token",
        "fixed": {
            "headers": peer_check.token_request_headers(),
            "body": peer_check.token_request_body(),
        },
    }
    path.write_text(json.dumps(plan))
    return path


def start_agentiam(work_dir: Path, stack: Any) -> tuple[Any, str | None]:
    """Start and set up agentiam; return (deployment, None) or (None, reason)."""
    # Any failure here leaves the peer half, which is still measured.
    try:
        import agentiam_setup

        deployment = stack.enter_context(agentiam_setup.deployed(work_dir))
    except Exception as error:
        logger.warning(
            "agentiam could not be set up, measuring the peer only: %s", error
        )
        return None, f"{type(error).__name__}: {error}"
    return deployment, None


def fresh_exchange_plan(deployment: Any, work_dir: Path, plan_index: int) -> Path:
    """Write a load plan from a new parent token and worker SVID."""
    import agentiam_setup

    inputs = agentiam_setup.exchange_inputs(deployment)
    (work_dir / "agentiam-token-check.json").write_text(
        json.dumps(inputs["token_check"])
    )
    path = work_dir / f"exchange-plan-{plan_index}.json"
    path.write_text(json.dumps(inputs["plan"]))
    (work_dir / "middleware-inputs.json").write_text(json.dumps(inputs["middleware"]))
    return path


class AgentiamSide:
    """The agentiam half of each round; after its first failure it is skipped."""

    def __init__(self, deployment: Any, work_dir: Path, reason: str | None) -> None:
        self.deployment = deployment
        self.work_dir = work_dir
        self.missing = reason
        self.plans = 0
        # The plan of the last load run, which the bare app is sent next.
        self.last_plan: Path | None = None

    @property
    def available(self) -> bool:
        return self.deployment is not None

    def fresh_plan(self) -> Path | None:
        """Write a new exchange plan, or record why agentiam cannot be measured."""
        if self.deployment is None:
            return None
        self.plans += 1
        # Any failure of the set-up leaves the peer half, which is still measured.
        try:
            self.last_plan = fresh_exchange_plan(
                self.deployment, self.work_dir, self.plans
            )
        except Exception as error:
            logger.exception("agentiam set-up failed, measuring the peer only")
            self.fail(f"set-up failed: {type(error).__name__}: {error}")
            return None
        return self.last_plan

    def load(
        self, recorder: Recorder, name: str, rate: float | None = None
    ) -> dict[str, Any] | None:
        plan = self.fresh_plan()
        if plan is None:
            return None
        pid = self.deployment.pid
        cpu_before = harness.process_cpu_seconds(pid) if pid else None
        try:
            result = recorder.load(name, plan, rate=rate)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            logger.warning(
                "agentiam %s failed, measuring the peer only: %s", name, error
            )
            self.fail(f"{name} failed: {error}")
            return None
        cpu_after = harness.process_cpu_seconds(pid) if pid else None
        if cpu_before is not None and cpu_after is not None and result["ok"]:
            # Server CPU time per successful exchange, on all its threads. It
            # depends less on what else runs on the machine than the rate does.
            result["server_cpu_ms_per_ok"] = (
                (cpu_after - cpu_before) * 1000 / result["ok"]
            )
        return result

    def fail(self, reason: str) -> None:
        self.deployment = None
        self.missing = reason


class BareSide:
    """bench/ceiling.py's bare HTTP app, sent the requests agentiam was just sent."""

    def __init__(self, issuer: str, pid: int, work_dir: Path) -> None:
        self.issuer = issuer
        self.pid = pid
        self.work_dir = work_dir

    def load(self, recorder: Recorder, exchange_plan: Path) -> dict[str, Any]:
        plan = json.loads(exchange_plan.read_text())
        plan["url"] = f"{self.issuer}/token"
        path = self.work_dir / "bare-plan.json"
        path.write_text(json.dumps(plan))

        cpu_before = harness.process_cpu_seconds(self.pid)
        result = recorder.load("bare_http_closed", path)
        cpu_after = harness.process_cpu_seconds(self.pid)
        if cpu_before is not None and cpu_after is not None and result["ok"]:
            result["server_cpu_ms_per_ok"] = (
                (cpu_after - cpu_before) * 1000 / result["ok"]
            )
        return result


def run_middleware(
    args: argparse.Namespace,
    agentiam: AgentiamSide,
    recorder: Recorder,
    results: dict[str, Any],
) -> None:
    if args.skip_middleware:
        results["middleware_missing"] = "skipped with --skip-middleware"
        return
    if agentiam.fresh_plan() is None:
        results["middleware_missing"] = (
            f"needs the agentiam server ({agentiam.missing})"
        )
        return
    command = [
        sys.executable, str(MIDDLEWARE_BENCH),
        str(agentiam.work_dir / "middleware-inputs.json"),
        "--runs", str(args.runs), "--requests", str(args.middleware_requests),
    ]  # fmt: skip
    try:
        results["middleware"] = recorder.run_json("middleware", command)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        logger.warning("middleware benchmark failed: %s", error)
        results["middleware_missing"] = str(error)


def run_load_rounds(
    args: argparse.Namespace,
    recorder: Recorder,
    agentiam: AgentiamSide,
    bare: BareSide | None,
    peer_issuer: str,
    plan_for_peer: Path,
    results: dict[str, Any],
) -> None:
    wrk_path = harness.ensure_wrk()

    # One short unrecorded pass per side first, so the first recorded round
    # does not include Node's JIT warm-up or the server's first-request costs.
    warm_up = Recorder(min(args.duration, 3.0), args.connections)
    logger.info("warm-up pass, not recorded")
    warm_up.wrk(wrk_path, peer_issuer)
    warm_up.load("warm_up", plan_for_peer)
    agentiam.load(warm_up, "warm_up")

    for index in range(args.runs):
        logger.info("closed-loop round %d of %d", index + 1, args.runs)
        results["peer_wrk"].append(recorder.wrk(wrk_path, peer_issuer))
        results["peer_loadgen_closed"].append(
            recorder.load("peer_loadgen_closed", plan_for_peer)
        )
        exchange = agentiam.load(recorder, "agentiam_exchange_closed")
        if exchange is not None:
            results["agentiam_exchange_closed"].append(exchange)
        if exchange is not None and bare is not None and agentiam.last_plan:
            results["bare_http_closed"].append(bare.load(recorder, agentiam.last_plan))

    peer_half = report.median_of(results["peer_wrk"], "ok_per_s") / 2
    agentiam_half = (
        report.median_of(results["agentiam_exchange_closed"], "ok_per_s") / 2
        if results["agentiam_exchange_closed"]
        else None
    )
    results["half_rates"] = {"peer": peer_half, "agentiam": agentiam_half}
    for index in range(args.runs):
        logger.info("open-loop round %d of %d", index + 1, args.runs)
        results["peer_loadgen_open"].append(
            recorder.load("peer_loadgen_open", plan_for_peer, rate=peer_half)
        )
        if agentiam_half:
            exchange = agentiam.load(
                recorder, "agentiam_exchange_open", rate=agentiam_half
            )
            if exchange is not None:
                results["agentiam_exchange_open"].append(exchange)


def start_bare(work_dir: Path, stack: Any, recorder: Recorder) -> BareSide:
    """Start bench/ceiling.py's bare HTTP app on a free port."""
    port = harness.free_port()
    issuer = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(CEILING), "serve", "--port", str(port)]
    process = stack.enter_context(
        harness.running(
            command,
            # A GET gets 405, and any status means the app is up.
            ready_url=f"{issuer}/token",
            log_path=work_dir / "bare.log",
            cwd=harness.REPO_DIR,
        )
    )
    recorder.commands["bare_http_server"] = shlex.join(relative_args(command))
    return BareSide(issuer, process.pid, work_dir)


def run_rounds(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    import contextlib

    harness.ensure_wrk()
    harness.ensure_peer_installed()
    recorder = Recorder(args.duration, args.connections)
    results: dict[str, Any] = {
        "peer_wrk": [],
        "peer_loadgen_closed": [],
        "agentiam_exchange_closed": [],
        "peer_loadgen_open": [],
        "agentiam_exchange_open": [],
        "bare_http_closed": [],
        "crypto": None,
        "middleware": None,
        "agentiam_missing": None,
        "middleware_missing": None,
    }

    peer_port = harness.free_port()
    peer_issuer = f"http://127.0.0.1:{peer_port}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            harness.running(
                ["node", "server.mjs", "--port", str(peer_port)],
                ready_url=f"{peer_issuer}/.well-known/openid-configuration",
                log_path=work_dir / "peer.log",
                cwd=harness.PEER_DIR,
            )
        )
        results["peer_token"] = peer_check.check_peer(peer_issuer)
        logger.info("peer token verified: %s", results["peer_token"]["header"])
        recorder.commands["peer_server"] = (
            f"(cd bench/peer && node server.mjs --port {peer_port})"
        )
        plan_for_peer = peer_plan(peer_issuer, work_dir / "peer-plan.json")

        if args.peer_only:
            agentiam = AgentiamSide(None, work_dir, "skipped with --peer-only")
        else:
            deployment, reason = start_agentiam(work_dir, stack)
            agentiam = AgentiamSide(deployment, work_dir, reason)
            if deployment is not None:
                recorder.commands["agentiam_server"] = (
                    "AGENTIAM_DATA_DIR=<fresh dir> "
                    ".venv/bin/python -m agentiam.cli.main "
                    "serve --host 127.0.0.1 --port <free port>"
                )

        bare = start_bare(work_dir, stack, recorder) if agentiam.available else None
        run_load_rounds(
            args, recorder, agentiam, bare, peer_issuer, plan_for_peer, results
        )
        run_middleware(args, agentiam, recorder, results)
        if bare is not None:
            command = [sys.executable, str(CEILING), "crypto", "--runs", str(args.runs)]
            results["crypto"] = recorder.run_json("crypto", command)
        results["agentiam_missing"] = agentiam.missing
        check = work_dir / "agentiam-token-check.json"
        if check.exists():
            results["agentiam_token"] = json.loads(check.read_text())

    results["commands"] = recorder.commands
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="rounds per measurement (default 5)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per load run (default 10)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections (default 16)",
    )
    parser.add_argument(
        "--middleware-requests",
        type=int,
        default=2000,
        help="requests per timed middleware run (default 2000)",
    )
    parser.add_argument(
        "--peer-only", action="store_true", help="measure only the peer"
    )
    parser.add_argument(
        "--skip-middleware", action="store_true", help="do not time the middleware"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where latest.md and latest.json are written (default bench/results)",
    )

    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 20:
        parser.error(f"--runs {args.runs} is out of range: expected 1 to 20")
    if not 1 <= args.duration <= 60:
        parser.error(f"--duration {args.duration} is out of range: expected 1 to 60 s")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # httpx logs every set-up request at INFO, which buries the round lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    start = time.monotonic()
    load_before = harness.load_average()

    scratch = RESULTS_DIR / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="run-", dir=scratch) as work:
        results = run_rounds(args, Path(work))

    results["started_at"] = started.isoformat(timespec="seconds")
    results["elapsed_s"] = time.monotonic() - start
    results["machine"] = harness.machine_facts()
    results["machine"]["load_average_before"] = load_before
    results["machine"]["load_average_after"] = harness.load_average()
    results["invocation"] = shlex.join(
        [
            ".venv/bin/python",
            "bench/run.py",
            *(argv if argv is not None else sys.argv[1:]),
        ]
    )
    results["settings"] = {
        "runs": args.runs,
        "duration_s": args.duration,
        "connections": args.connections,
        "middleware_requests": args.middleware_requests,
    }
    results["summary"] = report.summarize(results)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.render_markdown(results)
    (args.output_dir / "latest.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
