"""The audit package's public API and its freedom from server imports."""

from __future__ import annotations

import inspect
import subprocess
import sys

import agentiam.audit
from agentiam.audit import merkle
from agentiam.audit.log import AuditLog


def test_package_exports() -> None:
    assert agentiam.audit.__all__ == ["AuditEvent", "AuditLog"]
    assert agentiam.audit.AuditLog is AuditLog


def test_audit_log_signatures() -> None:
    assert list(inspect.signature(AuditLog.record_in).parameters) == [
        "self",
        "conn",
        "event",
    ]
    assert list(inspect.signature(AuditLog.record).parameters) == ["self", "event"]
    assert inspect.iscoroutinefunction(AuditLog.record)
    assert list(inspect.signature(AuditLog).parameters) == [
        "engine", "writer", "settings", "clock", "keyring", "tree_head_every",
        "tree_head_interval_ms", "pseudonyms", "rebuild_nodes",
    ]  # fmt: skip


def test_merkle_api() -> None:
    names = {
        "leaf_hash", "node_hash", "empty_root", "inclusion_proof", "consistency_proof",
        "verify_inclusion", "verify_consistency", "root_from_inclusion_proof",
        "root_from_leaf_hashes", "LeafHashes", "CompactRange", "HASH_SIZE",
    }  # fmt: skip
    assert names <= set(dir(merkle))


def test_verifiers_import_without_server_packages() -> None:
    code = """
import sys
for name in ("sqlalchemy", "starlette", "alembic", "uvicorn"):
    sys.modules[name] = None
import agentiam.audit
import agentiam.audit.merkle
import agentiam.audit.events
import agentiam.audit.chain
import agentiam.audit.tree_head
import agentiam.audit._rfc8785
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
