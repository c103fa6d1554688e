"""The agent SDK and the middleware import with the server dependencies blocked."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKING_IMPORT = textwrap.dedent(
    """
    import sys

    BLOCKED = {"starlette", "sqlalchemy", "alembic", "uvicorn", "psycopg", "fastapi"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked server dependency {name!r}")
            return None

    sys.meta_path.insert(0, Blocker())
    import agentiam.client
    import agentiam.client.audit
    import agentiam.enforce
    import agentiam.enforce.middleware
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("ok")
    """
)


def test_shared_packages_import_without_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKING_IMPORT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
