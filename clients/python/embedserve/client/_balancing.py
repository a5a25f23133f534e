"""Client-side balancing over several servers: round_robin plus retries of idempotent calls.

gRPC's own service config does the work, so the same JSON serves the Go and Java clients
(``clients/go/embedserve/balancing.go``, ``Balancing.java``) and behaves alike in all three.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

# Calls that may run twice without changing anything. Upsert, Delete, the ingestion
# streams and collection changes are not retried: ingestion resumes through its own
# acknowledgements, and a retried write could land after a later one. Cluster is left out
# too: with write_label it writes payloads, and the policy is per method, not per request.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "embedserve.v1.EmbeddingService": (
        "Embed",
        "EmbedTokens",
        "Tokenize",
        "Similarity",
        "GetModelInfo",
        "Rerank",
    ),
    "embedserve.v1.VectorService": (
        "Search",
        "Recommend",
        "Get",
        "Count",
        "ListCollections",
        "GetCollection",
        "Scroll",
        "FindDuplicates",
        "SearchBatch",
        "Facet",
        "ListAliases",
    ),
}

# Five attempts (gRPC's cap) with 0.1 s, 0.2 s, 0.4 s, 0.8 s backoff: long enough for a
# killed server's connection to be noticed and its subchannel dropped from the rotation.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> dict[str, Any]:
    """round_robin over every resolved address; a server reporting NOT_SERVING on the
    health service (warming up, draining) leaves the rotation until it serves again."""
    return {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {
                "name": [
                    {"service": service, "method": method}
                    for service, methods in IDEMPOTENT_METHODS.items()
                    for method in methods
                ],
                "retryPolicy": RETRY_POLICY,
            }
        ],
    }


def is_balanced(target: str | Sequence[str]) -> bool:
    """Several addresses or a resolver target (``dns:///``, ``ipv4:``) turn balancing on."""
    if not isinstance(target, str):
        return True
    return "," in target or target.startswith(("dns:", "ipv4:", "ipv6:"))


def channel_target(target: str | Sequence[str]) -> str:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` (IP literals) becomes gRPC's ``ipv4:``/``ipv6:``
    target; host names need ``dns:///name:port``, which resolves to all of a name's addresses."""
    if isinstance(target, str):
        _check_ports(target)
        if target.startswith(("dns:", "ipv4:", "ipv6:", "unix:")) or "," not in target:
            return target
        addresses = [part.strip() for part in target.split(",") if part.strip()]
    else:
        addresses = [part.strip() for part in target]
        for address in addresses:
            _check_ports(address)
    if not addresses:
        raise ValueError("target: at least one address is needed")
    families = {_ip_family(address) for address in addresses}
    if len(families) != 1:
        raise ValueError(
            f"target: {addresses} mixes IPv4 and IPv6 addresses; give one family per client"
        )
    return f"{families.pop()}:{','.join(addresses)}"


def _check_ports(target: str) -> None:
    """Refuse a port past 65535, which gRPC takes modulo 65536 (:118976 reached :53440)."""
    if not target.strip():
        raise ValueError("target: empty; give host:port")
    if target.startswith("unix:"):
        return
    addresses = target.split(":", 1)[1] if target.startswith(("ipv4:", "ipv6:")) else target
    if target.startswith("dns:"):
        addresses = target.rsplit("/", 1)[-1]
    for address in addresses.split(","):
        port = address.strip().rpartition(":")[2]
        if port.isdigit() and not 0 < int(port) < 65536:
            raise ValueError(f"target: port {port} of {address.strip()!r} is not from 1 to 65535")


def _ip_family(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"target: {address!r} needs a port (host:port)")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"target: {address!r} is not an IP address; for host names use "
            "'dns:///name:port', which balances over all of the name's addresses"
        ) from None
    return "ipv4" if ip.version == 4 else "ipv6"


def balancing_options(target: str | Sequence[str]) -> list[tuple[str, Any]]:
    """Channel options to add for ``target``: none for a single server address."""
    if not is_balanced(target):
        return []
    return [
        ("grpc.service_config", json.dumps(service_config())),
        ("grpc.enable_retries", 1),
    ]
