"""SPIFFE IDs of agent instances, ``spiffe://<trust domain>/agent/<class>/<id>``."""

from __future__ import annotations

from agentiam.spiffe.errors import SPIFFEIDError
from agentiam.spiffe.id import _SEGMENT_RE, SPIFFEID, TrustDomain

AGENT_PATH_PREFIX = "agent"


def _check_segment(kind: str, value: str) -> None:
    if not isinstance(value, str) or _SEGMENT_RE.fullmatch(value) is None:
        raise SPIFFEIDError(
            f"Invalid {kind} {value!r}: must be one path segment of letters, "
            "digits, '.', '-' and '_'"
        )
    if value in (".", ".."):
        raise SPIFFEIDError(f"Invalid {kind} {value!r}: must not be '.' or '..'")


def agent_spiffe_id(trust_domain: str, agent_class: str, instance: str) -> SPIFFEID:
    """Build the SPIFFE ID of an agent instance.

    Raises:
        SPIFFEIDError: the trust domain, class or instance is not a valid component.
    """
    _check_segment("agent class", agent_class)
    _check_segment("agent instance", instance)
    return SPIFFEID(
        TrustDomain(trust_domain), f"/{AGENT_PATH_PREFIX}/{agent_class}/{instance}"
    )


def parse_agent_spiffe_id(text: str) -> tuple[SPIFFEID, str, str]:
    """Parse the SPIFFE ID of an agent instance.

    Returns:
        The parsed ID, the agent class and the instance name.

    Raises:
        SPIFFEIDError: the text is not a valid SPIFFE ID or its path is not
            ``/agent/<class>/<instance>``.
    """
    spiffe_id = SPIFFEID.parse(text)
    segments = spiffe_id.segments()
    if len(segments) != 3 or segments[0] != AGENT_PATH_PREFIX:
        raise SPIFFEIDError(
            f"Invalid agent SPIFFE ID {text!r}: path must be "
            "'/agent/<class>/<instance>'"
        )
    return spiffe_id, segments[1], segments[2]
