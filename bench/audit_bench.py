"""Benchmark the audit log: durable appends, export verification and proof time.

Run from the repository root::

    .venv/bin/python bench/audit_bench.py [--events 1000000] [--runs 3]

It measures, on SQLite in a temporary directory:

- durable appends/s through ``AuditLog.record`` and ``GroupCommitWriter`` with
  ``--writers`` asyncio tasks, and right after each run the disk's limit: the
  same canonical events written as JSON lines to a plain file with one fsync per
  batch of that run's mean batch size, and the log's rows for them, prepared in
  advance, inserted into SQLite with the same batches (``measure_bare_sqlite``);
- the time ``verify_export`` takes over an export of ``--events`` events.  The
  rows are written in bulk with the log's own leaf, chain and tree-node code
  (``record`` for a million events would take minutes), then exported with the
  CLI's export code.  One more run verifies the same export re-encoded with
  ``json.dumps`` defaults, so no event stands in canonical form and every one
  is parsed strictly and encoded again (the slow path);
- the median time of ``AuditLog.inclusion_proof`` at that size, and the first
  proof after the log is opened.

The machine is shared, so the load average before and after is recorded too.
With ``--verify-only`` it builds and exports the log, prints the wall and CPU
seconds of each ``verify_export`` run and writes no results.

Results go to bench/results/audit.md and bench/results/audit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import insert

from agentiam.audit.chain import GENESIS_CHAIN_HASH, next_chain_hash
from agentiam.audit.events import AuditEvent
from agentiam.audit.export_verifier import verify_export
from agentiam.audit.log import AuditLog
from agentiam.audit.merkle import CompactRange, leaf_hash
from agentiam.audit.tables import audit_events, audit_tree_nodes, tree_heads
from agentiam.audit.tree import nodes_for_leaves
from agentiam.audit.tree_head import sign_tree_head
from agentiam.cli.audit import _export
from agentiam.jose import SigningKey, VerificationKey
from agentiam.storage.engine import create_engine
from agentiam.storage.metadata import metadata
from agentiam.storage.writer import GroupCommitWriter

RESULTS = Path(__file__).parent / "results"
TABLES = [audit_events, audit_tree_nodes, tree_heads]
ISSUER = "http://127.0.0.1:8800"


def _event(number: int) -> AuditEvent:
    return AuditEvent(
        "session.created",
        "allow",
        "issued",
        human=f"h-{number % 1000}",
        request={"method": "POST", "path": "/v1/sessions"},
        details={"session_jti": f"jti-{number:012d}"},
    ).stamped(1_750_000_000.0 + number / 1000)


def _open_log(directory: Path) -> tuple[Any, GroupCommitWriter, AuditLog]:
    engine = create_engine(f"sqlite:///{directory / 'agentiam.db'}")
    from agentiam.storage.registry import load_all_tables

    load_all_tables().create_all(engine)
    writer = GroupCommitWriter(engine, batch_max=512, batch_wait_ms=2)
    writer.start()
    log = AuditLog(engine=engine, writer=writer, tree_head_every=0)
    return engine, writer, log


def measure_appends(count: int, writers: int) -> dict[str, float]:
    """Return appends/s through the log and the commits it made."""
    with tempfile.TemporaryDirectory() as name:
        engine, writer, log = _open_log(Path(name))
        commits = 0
        original = writer._commit

        def counting(batch: list[Any]) -> None:
            nonlocal commits
            commits += 1
            original(batch)

        writer._commit = counting  # type: ignore[method-assign]

        async def worker(first: int) -> None:
            for number in range(first, count, writers):
                await log.record(_event(number))

        async def run() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(writers)))
            return time.perf_counter() - start

        elapsed = asyncio.run(run())
        writer.close()
        engine.dispose()
    return {"per_second": count / elapsed, "mean_batch": count / max(commits, 1)}


def measure_append_run(count: int, writers: int) -> dict[str, float]:
    """Measure one appends run, then the plain file and bare SQLite at its batch."""
    appends = measure_appends(count, writers)
    batch = max(1, round(appends["mean_batch"]))
    appends["plain_per_second"] = measure_plain_file(count, batch)
    appends["sqlite_per_second"] = measure_bare_sqlite(count, batch)
    return appends


# A tree node row: level, idx and hash.
Node = tuple[int, int, bytes]


def _bare_rows(count: int) -> tuple[list[tuple[Any, ...]], list[Node]]:
    """Return the audit_events values of ``count`` events and their tree nodes.

    The blobs are ``bytearray`` and the NULL columns are left out, which is how
    the log binds them on SQLite, the fastest way through Python's driver.
    """
    chain, leaves, rows = GENESIS_CHAIN_HASH, [], []
    for number in range(count):
        event = _event(number)
        canonical = event.canonical()
        leaf = leaf_hash(canonical)
        chain = next_chain_hash(chain, leaf)
        leaves.append(leaf)
        rows.append(
            (number, event.time, event.type, event.decision, event.human,
             bytearray(leaf), bytearray(chain), bytearray(canonical))
        )  # fmt: skip
    nodes = [
        (int(node["level"]), int(node["idx"]), bytes(node["hash"]))
        for node in nodes_for_leaves(leaves)
    ]
    return rows, nodes


def measure_bare_sqlite(count: int, batch: int) -> float:
    """Return rows/s for the log's rows, encoded and hashed in advance, on SQLite.

    The same ``audit_events`` and ``audit_tree_nodes`` rows that ``record``
    writes for these events go into the same schema with the same pragmas (WAL,
    ``synchronous=FULL``), one transaction per batch, through the driver's
    ``executemany``.  Nothing is validated, encoded, hashed or awaited while the
    clock runs, so the rate bounds what any append path on SQLite could reach.
    """
    rows, nodes = _bare_rows(count)
    # A node of 2**level leaves is complete with the leaf at its last seq.
    by_seq: dict[int, list[Node]] = {}
    for level, idx, value in nodes:
        by_seq.setdefault(((idx + 1) << level) - 1, []).append((level, idx, value))

    with tempfile.TemporaryDirectory() as name:
        engine = create_engine(f"sqlite:///{Path(name) / 'agentiam.db'}")
        from agentiam.storage.registry import load_all_tables

        load_all_tables().create_all(engine)
        connection = engine.raw_connection()
        cursor = connection.cursor()
        start = time.perf_counter()
        for index in range(0, count, batch):
            chunk = rows[index : index + batch]
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(
                "INSERT INTO audit_events (seq, time, type, decision, human, "
                "grant_id, agent, task_id, leaf_hash, chain_hash, canonical) "
                "VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?)",
                chunk,
            )
            completed = [node for row in chunk for node in by_seq.get(row[0], ())]
            if completed:
                cursor.executemany(
                    "INSERT INTO audit_tree_nodes (level, idx, hash) VALUES (?, ?, ?)",
                    completed,
                )
            cursor.execute("COMMIT")
        elapsed = time.perf_counter() - start
        cursor.close()
        connection.close()
        engine.dispose()
    return count / elapsed


def measure_plain_file(count: int, batch: int) -> float:
    """Return lines/s for canonical events appended to a file, fsync per batch."""
    lines = [_event(number).canonical() + b"\n" for number in range(count)]
    with tempfile.TemporaryDirectory() as name:
        path = Path(name) / "events.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        start = time.perf_counter()
        for index in range(0, count, batch):
            os.write(fd, b"".join(lines[index : index + batch]))
            os.fsync(fd)
        elapsed = time.perf_counter() - start
        os.close(fd)
    return count / elapsed


def build_log(directory: Path, count: int, key: SigningKey) -> float:
    """Write ``count`` events in bulk with the log's hashing code; return seconds."""
    engine = create_engine(f"sqlite:///{directory / 'agentiam.db'}")
    metadata.create_all(engine, tables=TABLES)
    start = time.perf_counter()
    chain, compact, leaves = GENESIS_CHAIN_HASH, CompactRange(), []
    chunk: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for number in range(count):
            event = _event(number)
            canonical = event.canonical()
            leaf = leaf_hash(canonical)
            chain = next_chain_hash(chain, leaf)
            compact.append(leaf)
            leaves.append(leaf)
            chunk.append(
                {"seq": number, "time": event.time, "type": event.type,
                 "decision": event.decision, "human": event.human,
                 "grant_id": None, "agent": None, "task_id": None,
                 "leaf_hash": leaf, "chain_hash": chain, "canonical": canonical}
            )  # fmt: skip
            if len(chunk) == 10_000:
                conn.execute(insert(audit_events), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(audit_events), chunk)
        conn.execute(insert(audit_tree_nodes), list(nodes_for_leaves(leaves)))
        head = sign_tree_head(count, compact.root(), time.time(), key, issuer=ISSUER)
        conn.execute(
            insert(tree_heads).values(
                size=head.size, root=head.root, timestamp=head.timestamp,
                kid=head.kid, signature=head.signature, version=head.version,
            )
        )  # fmt: skip
    engine.dispose()
    return time.perf_counter() - start


def export_log(directory: Path) -> tuple[Path, float]:
    """Export the log with the CLI's code; return the file and the seconds taken."""
    engine = create_engine(f"sqlite:///{directory / 'agentiam.db'}")
    writer = GroupCommitWriter(engine)
    log = AuditLog(engine=engine, writer=writer)
    path = directory / "export.jsonl"
    start = time.perf_counter()
    with path.open("w", encoding="utf-8") as out:
        _export(SimpleNamespace(engine=engine, audit=log), out)
    engine.dispose()
    return path, time.perf_counter() - start


def reencode_export(path: Path) -> Path:
    """Write ``path`` again with ``json.dumps`` defaults (spaces, escaped text)."""
    target = path.with_name("export-reencoded.jsonl")
    with path.open(encoding="utf-8") as lines, target.open("w") as out:
        for line in lines:
            out.write(json.dumps(json.loads(line)) + "\n")
    return target


def measure_verify(path: Path, key: SigningKey, runs: int) -> list[float]:
    """Time ``verify_export`` over an export, ``runs`` times."""
    public = VerificationKey.from_jwk(key.public_jwk())
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with path.open(encoding="utf-8") as lines:
            report = verify_export(lines, {key.kid: public}.get, issuer=ISSUER)
        times.append(time.perf_counter() - start)
        if not report.ok:
            raise SystemExit(f"verification failed: {report.first_problem}")
    return times


def measure_verify_only(count: int, runs: int) -> None:
    """Build and export a log of ``count`` events and print each verify's time."""
    key = SigningKey.generate("ES256")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        build_log(directory, count, key)
        path, _ = export_log(directory)
        for _ in range(runs):
            cpu = time.process_time()
            (wall,) = measure_verify(path, key, 1)
            cpu = time.process_time() - cpu
            print(f"verify {count} events: {wall:.2f} s wall, {cpu:.2f} s CPU")


def measure_proofs(directory: Path, count: int, samples: int) -> dict[str, float]:
    """Return the first and the median inclusion proof time, in milliseconds."""
    engine = create_engine(f"sqlite:///{directory / 'agentiam.db'}")
    writer = GroupCommitWriter(engine)
    start = time.perf_counter()
    log = AuditLog(engine=engine, writer=writer)
    opened = time.perf_counter() - start

    picks = random.Random(7).sample(range(count), samples)  # noqa: S311
    times = []
    for seq in picks:
        start = time.perf_counter()
        log.inclusion_proof(seq, count)
        times.append(time.perf_counter() - start)
    engine.dispose()
    return {
        "open_ms": opened * 1000,
        "first_ms": times[0] * 1000,
        "median_ms": statistics.median(times[1:]) * 1000,
    }


def machine() -> dict[str, Any]:
    """Return nproc, memory and CPU model of this machine."""
    model = platform.processor()
    memory = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_mib": memory, "cpu": model}


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def main() -> None:
    """Run every measurement and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events in the log that verify and proofs use (default: 1000000)",
    )
    parser.add_argument(
        "--appends",
        type=int,
        default=20_000,
        help="events appended in each appends run (default: 20000)",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=64,
        help="concurrent asyncio tasks calling record() (default: 64)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of each measurement (default: 3)"
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="only build and export the log of --events events and time "
        "verify_export --runs times, printing wall and CPU seconds; writes no results",
    )
    args = parser.parse_args()
    if args.verify_only:
        measure_verify_only(args.events, args.runs)
        return
    load_before = load_average()

    runs = [measure_append_run(args.appends, args.writers) for _ in range(args.runs)]
    rates = [run["per_second"] for run in runs]
    plain = [run["plain_per_second"] for run in runs]
    ratios = [rate / limit for rate, limit in zip(rates, plain, strict=True)]
    bare = [run["sqlite_per_second"] for run in runs]
    bare_ratios = [rate / limit for rate, limit in zip(bare, plain, strict=True)]
    batch = round(statistics.median(run["mean_batch"] for run in runs))
    print(f"appends/s {rates}, plain file {plain}, batch {batch}", flush=True)

    key = SigningKey.generate("ES256")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        build = build_log(directory, args.events, key)
        print(f"built {args.events} events in {build:.1f} s", flush=True)
        proofs = [
            measure_proofs(directory, args.events, 1001) for _ in range(args.runs)
        ]
        print(f"proofs {proofs}", flush=True)
        path, export_seconds = export_log(directory)
        verify = measure_verify(path, key, args.runs)
        print(f"exported in {export_seconds:.1f} s, verify {verify}", flush=True)
        reencoded = measure_verify(reencode_export(path), key, 1)
        print(f"verify re-encoded export {reencoded}", flush=True)

    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "writers": args.writers,
        "appends": args.appends,
        "runs": args.runs,
        "appends_per_second": summary(rates),
        "mean_batch": batch,
        "plain_file_per_second": summary(plain),
        "ratio": summary(ratios),
        "bare_sqlite_per_second": summary(bare),
        "bare_sqlite_ratio": summary(bare_ratios),
        "events": args.events,
        "build_seconds": build,
        "export_seconds": export_seconds,
        "verify_seconds": summary(verify),
        "verify_reencoded_seconds": summary(reencoded),
        "proof": {
            name: summary([proof[name] for proof in proofs])
            for name in ("open_ms", "first_ms", "median_ms")
        },
    }
    write_results(results)


def summary(values: list[float]) -> dict[str, Any]:
    """Return the median, minimum, maximum and every value of one figure's runs."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def _cell(figure: dict[str, Any], spec: str) -> str:
    low, high = format(figure["min"], spec), format(figure["max"], spec)
    return f"{format(figure['median'], spec)} ({low} to {high})"


def write_results(results: dict[str, Any]) -> None:
    """Write the JSON record and the Markdown page."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(results, indent=2) + "\n")
    host = results["machine"]
    proof = results["proof"]
    rows = [
        ("durable appends/s", _cell(results["appends_per_second"], ",.0f"),
         ">= 20,000"),
        ("plain file + fsync per batch, lines/s",
         _cell(results["plain_file_per_second"], ",.0f"), ""),
        ("appends / plain file (per run)", _cell(results["ratio"], ".0%"), ">= 50%"),
        ("bare SQLite: the same rows prepared in advance, rows/s",
         _cell(results["bare_sqlite_per_second"], ",.0f"), ""),
        ("bare SQLite / plain file (per run)",
         _cell(results["bare_sqlite_ratio"], ".0%"), ""),
        (f"verify export of {results['events']:,} events, s",
         _cell(results["verify_seconds"], ".1f"), "< 20"),
        ("verify the same export re-encoded (no canonical lines), s",
         _cell(results["verify_reencoded_seconds"], ".1f"), ""),
        (f"inclusion proof at {results['events']:,}, median ms",
         _cell(proof["median_ms"], ".3f"), "< 1"),
        ("first proof after open, ms", _cell(proof["first_ms"], ".3f"), ""),
        ("open the log (AuditLog()), ms", _cell(proof["open_ms"], ".1f"), ""),
    ]  # fmt: skip
    lines = [
        "# Audit log benchmark",
        "",
        f"Command: `{results['command']}`, {results['date']}.",
        f"Machine: {host['nproc']} CPUs ({host['cpu']}), "
        f"{host['memory_mib']:,} MiB memory, SQLite (WAL) in a temporary directory.",
        f"{results['writers']} asyncio tasks each awaiting `record()`; "
        f"{results['appends']:,} events per run; mean group-commit batch "
        f"{results['mean_batch']} events; each cell is the median of "
        f"{results['runs']} runs, with the lowest and highest in brackets; "
        "each plain-file run and bare SQLite run follows its appends run.",
        f"Load average (1, 5, 15 min) {results['load_average_before']} before "
        f"and {results['load_average_after']} after: other work shared the "
        "machine when it was above 0.",
        f"The {results['events']:,}-event log is written in bulk with the log's "
        "leaf, chain and tree-node code, not through `record()`.",
        "",
        "| measure | median (range) | target |",
        "|---|---|---|",
        *(f"| {name} | {value} | {target} |" for name, value, target in rows),
        "",
    ]
    (RESULTS / "audit.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
