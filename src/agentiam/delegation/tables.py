"""Tables of the delegation package: the grants table, re-exported.

Tokens have no table: the revocation set contains revoked jtis, and the audit log keeps
every issuance.
"""

from __future__ import annotations

from agentiam.delegation.grant_tables import grants

__all__ = ["grants"]
