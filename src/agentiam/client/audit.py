"""Check that an audit event is in the server's log without trusting the server.

The check trusts only the server's published signing keys: it verifies the latest
signed tree head with them, recomputes the event's leaf hash from its canonical
encoding, and verifies the server's inclusion proof against the head's root
(RFC 9162 section 2.1.3). A server that dropped or changed the event cannot
produce a proof that passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agentiam.audit.chain import hash_from_b64url
from agentiam.audit.errors import AuditError
from agentiam.audit.events import AuditEvent
from agentiam.audit.merkle import leaf_hash, verify_inclusion
from agentiam.audit.tree_head import TreeHead, verify_tree_head
from agentiam.client._wire import error_from_response
from agentiam.client.errors import ClientError, ProtocolError
from agentiam.jose import JOSEError, VerificationKey


class AuditProofError(ClientError):
    """The event is not provably in the log: a head or proof did not verify."""


@dataclass(frozen=True, slots=True)
class InclusionCheck:
    """The outcome of a successful inclusion check."""

    seq: int
    tree_size: int
    root_hash: bytes
    kid: str


async def verify_event_inclusion(
    http: httpx.AsyncClient,
    server: str,
    seq: int,
    event: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
) -> InclusionCheck:
    """Verify that ``event`` is leaf ``seq`` of the log under its latest signed head.

    Args:
        http: the client used for every request.
        server: the issuer URL; the tree head must name it as ``iss``.
        seq: the event's position in the log.
        event: the event's JSON object as the server returned it.
        headers: credentials for the audit routes (an admin session or a
            resource-server client's HTTP Basic header).

    Raises:
        AuditProofError: the head's signature, the head's size or the proof fails.
        ServerError: the server rejected a request.
    """
    keys = await _fetch_keys(http, server)
    head = await _latest_head(http, server, keys, headers)
    if seq >= head.size:
        raise AuditProofError(
            f"Event {seq} is not covered by the latest signed tree head "
            f"(size {head.size}); ask the server to sign a newer head."
        )

    try:
        leaf = leaf_hash(AuditEvent.from_dict(event).canonical())
    except AuditError as err:
        raise AuditProofError(f"Event {seq} is not a valid audit event: {err}") from err

    path = await _inclusion_path(http, server, seq, head.size, headers)
    try:
        included = verify_inclusion(seq, head.size, leaf, path, head.root)
    except AuditError as err:
        raise AuditProofError(f"The proof for event {seq} is malformed: {err}") from err
    if not included:
        raise AuditProofError(
            f"Event {seq} is not in the log of size {head.size} signed by key "
            f"'{head.kid}': the proof does not lead to the signed root."
        )
    return InclusionCheck(seq, head.size, head.root, head.kid)


async def _get_json(
    http: httpx.AsyncClient, url: str, headers: Mapping[str, str] | None = None
) -> Any:
    response = await http.get(url, headers=dict(headers or {}))
    if response.status_code != 200:
        raise error_from_response(response)
    try:
        return response.json()
    except ValueError as err:
        raise ProtocolError(f"The response of {url} is not JSON.") from err


async def _fetch_keys(
    http: httpx.AsyncClient, server: str
) -> dict[str, VerificationKey]:
    metadata = await _get_json(http, f"{server}/.well-known/oauth-authorization-server")
    jwks = await _get_json(http, str(metadata["jwks_uri"]))
    keys: dict[str, VerificationKey] = {}
    for jwk in jwks.get("keys", []):
        try:
            key = VerificationKey.from_jwk(jwk)
        except JOSEError:
            # A key of a type this SDK does not verify with cannot sign a head.
            continue
        keys[key.kid] = key
    return keys


async def _latest_head(
    http: httpx.AsyncClient,
    server: str,
    keys: Mapping[str, VerificationKey],
    headers: Mapping[str, str] | None,
) -> TreeHead:
    body = await _get_json(http, f"{server}/v1/audit/tree-heads/latest", headers)
    try:
        return verify_tree_head(str(body["signature"]), keys.get, issuer=server)
    except (AuditError, KeyError) as err:
        raise AuditProofError(f"The latest tree head does not verify: {err}") from err


async def _inclusion_path(
    http: httpx.AsyncClient,
    server: str,
    seq: int,
    size: int,
    headers: Mapping[str, str] | None,
) -> list[bytes]:
    url = f"{server}/v1/audit/proofs/inclusion?seq={seq}&tree_size={size}"
    body = await _get_json(http, url, headers)
    try:
        return [hash_from_b64url(str(value)) for value in body["audit_path"]]
    except (AuditError, KeyError, TypeError) as err:
        raise AuditProofError(f"The proof for event {seq} is malformed: {err}") from err
