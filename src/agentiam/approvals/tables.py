"""The ciba_requests table: OIDC CIBA authentication requests and their decision.

Times are Unix seconds as floats. Scopes and audiences are JSON arrays, sorted, and
``authorization_details`` is the JSON array of RFC 9396 objects as requested. The
``auth_req_id`` is a bearer secret for polling the token endpoint, so only its hex
SHA-256 is stored. ``id`` is the public handle by which the human approves or denies.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Table, Text

from agentiam.storage.metadata import metadata

#: The states of a request. ``issued`` follows ``approved`` once the first token was
#: redeemed; ``expired`` is written when a poll or a decision finds it past expiry.
CIBA_STATUSES = ("pending", "approved", "denied", "expired", "issued")

ciba_requests = Table(
    "ciba_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("auth_req_id_hash", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("agent_class", String(64), ForeignKey("agent_classes.name"), nullable=False),
    # The SPIFFE ID of the requesting instance and the RFC 7638 thumbprint of its
    # key (cnf.jkt of its SVID): only that key may poll for the token.
    Column("instance_id", String(512), nullable=False),
    Column("instance_jkt", String(64), nullable=False),
    Column("user_id", String(64), ForeignKey("users.id"), nullable=False),
    Column("binding_message", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    Column("authorization_details", Text, nullable=False),
    Column("max_depth", Integer, nullable=False),
    # Seconds the grant lasts once approved (the CIBA requested_expiry of the grant).
    Column("grant_ttl", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("interval", Integer, nullable=False),
    Column("last_polled_at", Float, nullable=True),
    Column("decided_at", Float, nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("grant_id", String(64), nullable=True),
)

Index("ix_ciba_requests_user_status", ciba_requests.c.user_id, ciba_requests.c.status)
