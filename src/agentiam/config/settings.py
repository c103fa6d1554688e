"""The typed, frozen ``Settings`` object the server is built from.

Times are in seconds unless the field name says otherwise (``_ms``).  Three fields
have defaults derived from others, filled in by ``agentiam.config.load_settings``:
``database_url`` (SQLite in ``data_dir``), ``issuer`` (from ``host`` and ``port``) and
``key_rotation_overlap`` (``max_access_token_ttl + leeway``).  A bare ``Settings()``
leaves them empty, so build settings with the loader.  ``kek_file = None`` means
``data_dir/kek``, generated on first start when ``AGENTIAM_KEK`` is not set.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SigningAlg = Literal["ES256", "EdDSA"]
LogLevel = Literal["debug", "info", "warning", "error"]

SIGNING_ALGS: tuple[str, ...] = ("ES256", "EdDSA")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every server option, resolved: defaults < file < environment < flags."""

    data_dir: Path = Path("./agentiam-data")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8800
    issuer: str = ""
    trust_domain: str = "agentiam.local"
    signing_alg: SigningAlg = "ES256"
    kek_file: Path | None = None
    access_token_ttl: int = 300
    max_access_token_ttl: int = 3600
    svid_ttl: int = 300
    session_ttl: int = 900
    key_rotation_overlap: int = 0
    leeway: int = 30
    ciba_interval: int = 5
    ciba_expires_in: int = 300
    join_token_ttl: int = 3600
    audit_batch_max: int = 512
    audit_batch_wait_ms: int = 2
    audit_tree_head_every: int = 1000
    audit_tree_head_interval_ms: int = 10_000
    form_max_bytes: int = 65536
    dpop_replay_max_entries: int = 1_000_000
    revocation_refresh_ms: int = 1000
    audit_sink_url: str = ""
    audit_sink_batch_max: int = 500
    audit_sink_interval_ms: int = 1000
    audit_sink_timeout: int = 5
    log_level: LogLevel = "info"

    @property
    def sqlite_path(self) -> Path | None:
        """Return the SQLite database file, or ``None`` for another database."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        return Path(self.database_url[len(prefix) :])

    def replace(self, **changes: object) -> Settings:
        """Return a copy with ``changes`` applied, unvalidated (for tests)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


#: Fields whose default is derived from other fields by the loader.
DERIVED_FIELDS = frozenset({"database_url", "issuer", "key_rotation_overlap"})


def host_in_url(host: str) -> str:
    """Return ``host`` as a URL writes it: an IPv6 address in brackets (RFC 3986)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]" if address.version == 6 else host
