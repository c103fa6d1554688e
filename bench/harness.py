"""Process control, tool installation, machine facts and statistics for bench/run.py."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench.harness")

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEER_DIR = BENCH_DIR / "peer"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, *, timeout_s: float, process: subprocess.Popen[Any]
) -> None:
    """Poll ``url`` until it returns any HTTP status or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server process exited with code {process.returncode} before "
                f"{url} responded"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0):  # noqa: S310 (loopback URL)
                return
        except urllib.error.HTTPError:
            return
        except OSError as error:
            last_error = error
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not respond within {timeout_s} s: {last_error}")


@contextlib.contextmanager
def running(
    command: Sequence[str],
    *,
    ready_url: str,
    log_path: Path,
    cwd: Path = REPO_DIR,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until ``ready_url`` responds, and stop it on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        logger.info("starting %s (log %s)", " ".join(command), log_path)
        process = subprocess.Popen(  # noqa: S603 (fixed commands)
            list(command),
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_http(ready_url, timeout_s=ready_timeout_s, process=process)
            yield process
        finally:
            stop(process)


def process_cpu_seconds(pid: int) -> float | None:
    """Return the user plus system CPU time of ``pid`` so far, or None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces, so split after it.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        logger.warning("process %d ignored SIGTERM for 10 s, killing it", process.pid)
        process.kill()
        process.wait(timeout=10)


def ensure_wrk() -> str:
    """Return the path of wrk, installing Debian's package when it is missing."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install it with 'apt-get install -y wrk'")
    logger.info("wrk is missing, installing Debian's wrk package")
    subprocess.run(["apt-get", "update"], check=True)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)  # noqa: S607
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is still missing after 'apt-get install -y wrk'")
    return path


def ensure_peer_installed() -> None:
    """Install the peer's npm packages from package-lock.json when they are missing."""
    if (PEER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    if shutil.which("npm") is None:
        raise SystemExit("npm is missing: the reference peer needs Node.js 20+ and npm")
    lock = PEER_DIR / "package-lock.json"
    command = ["npm", "ci"] if lock.exists() else ["npm", "install"]
    logger.info("installing the peer's packages with %s", " ".join(command))
    subprocess.run(command, cwd=PEER_DIR, check=True)  # noqa: S603


def command_output(command: Sequence[str]) -> str:
    try:
        result = subprocess.run(  # noqa: S603
            list(command), capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages from /proc/loadavg."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError as error:
        return f"unavailable ({error})"


def machine_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                memory = f"{kib / 1024 / 1024:.1f} GiB"
                break
    peer_package = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    oidc_provider_version = (
        json.loads(peer_package.read_text())["version"]
        if peer_package.exists()
        else "not installed"
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory": memory,
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "node": command_output(["node", "--version"]),
        "oidc_provider": oidc_provider_version,
        "wrk": command_output(["wrk", "--version"]).split(" [")[0],
        "commit": command_output(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"]),
        "tree_dirty": bool(
            command_output(["git", "-C", str(REPO_DIR), "status", "--porcelain"])
        ),
    }


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over the runs of a benchmark."""

    median: float
    minimum: float
    maximum: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread | None:
        clean = [float(v) for v in values if v is not None]
        if not clean:
            return None
        return cls(statistics.median(clean), min(clean), max(clean), len(clean))

    @property
    def relative_range(self) -> float:
        """(max - min) / median, 0 when the median is 0."""
        if self.median == 0:
            return 0.0
        return (self.maximum - self.minimum) / self.median

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "runs": self.runs,
            "relative_range": self.relative_range,
        }
