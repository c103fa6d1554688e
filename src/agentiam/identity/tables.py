"""Tables of the identity package: humans, agent classes, class keys, join tokens
and resource-server clients.

Times are Unix seconds as floats. Sets of strings (scopes, audiences, classes a class
may spawn) are stored as JSON arrays, sorted, so that equal sets have equal rows.
Agent instances have no table: the SVID is the record.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    false,
)

from agentiam.storage.metadata import metadata

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("login", String(128), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False),
    # Encoded as "scrypt$1$<n>$<r>$<p>$<salt b64url>$<hash b64url>".
    Column("password_hash", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
)

agent_classes = Table(
    "agent_classes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner_id", String(64), ForeignKey("users.id"), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("audiences", Text, nullable=False),
    Column("may_spawn", Text, nullable=False),
    Column("max_depth", Integer, nullable=False),
    Column("default_ttl", Integer, nullable=False),
    Column("max_ttl", Integer, nullable=False),
    Column("allow_impersonation", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
)

class_keys = Table(
    "class_keys",
    metadata,
    Column(
        "agent_class",
        String(64),
        ForeignKey("agent_classes.name"),
        primary_key=True,
    ),
    # The RFC 7638 thumbprint of the public JWK, used as its key id.
    Column("kid", String(64), primary_key=True),
    Column("jwk", Text, nullable=False),
    Column("created_by", String(64), ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
)

join_tokens = Table(
    "join_tokens",
    metadata,
    # Hex SHA-256 of the token; the token itself is never stored.
    Column("token_hash", String(64), primary_key=True),
    Column("agent_class", String(64), ForeignKey("agent_classes.name"), nullable=False),
    Column("created_by", String(64), ForeignKey("users.id"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    # Same encoding as users.password_hash.
    Column("secret_hash", String(256), nullable=False),
    Column("audiences", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
)
