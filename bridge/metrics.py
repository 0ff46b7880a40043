"""Prometheus metrics of every ocbridge process, in one place (prefix ocbridge_).

Labels are bounded: methods, status classes, stacks, reasons; never user ids or paths.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

_METHODS = {"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PROPFIND", "PROPPATCH",
            "MKCOL", "MOVE", "COPY", "LOCK", "UNLOCK", "REPORT"}

HTTP_REQUESTS = Counter(
    "ocbridge_newstack_requests_total", "Requests answered by the new stack",
    ["method", "status_class"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "ocbridge_newstack_request_seconds", "Time to the start of the response",
    ["method"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
STORAGE_BYTES = Counter(
    "ocbridge_newstack_storage_bytes_total", "Bytes moved to and from storage",
    ["direction"], registry=REGISTRY)
BACKEND_UP = Gauge(
    "ocbridge_newstack_up", "1 while the new stack serves requests", registry=REGISTRY)

MIGRATED_FILES = Counter(
    "ocbridge_migrate_files_total", "Files and folders imported by migration jobs", ["phase"],
    registry=REGISTRY)
MIGRATED_BYTES = Counter(
    "ocbridge_migrate_bytes_total", "Bytes of file content imported by migration jobs",
    ["phase"], registry=REGISTRY)
MIGRATION_FINDINGS = Counter(
    "ocbridge_migrate_findings_total", "Things a migration job could not carry over as they were",
    ["code"], registry=REGISTRY)
MIGRATION_SECONDS = Histogram(
    "ocbridge_migrate_user_seconds", "Wall time of one user's migration job", registry=REGISTRY,
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600))

PROXY_REQUESTS = Counter(
    "ocbridge_proxy_requests_total", "Requests through the routing proxy",
    ["stack", "reason", "status_class"], registry=REGISTRY)
PROXY_LATENCY = Histogram(
    "ocbridge_proxy_request_seconds", "Proxy time to the start of the response", ["stack"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROXY_IDENTITIES = Counter(
    "ocbridge_proxy_identities_total", "Requests by the source that identified their user",
    ["source"], registry=REGISTRY)
PROXY_CONFLICTS = Counter(
    "ocbridge_proxy_identity_conflicts_total",
    "Requests whose identity sources named different users (the first source wins)",
    ["winner", "loser"], registry=REGISTRY)
PROXY_FROZEN = Counter(
    "ocbridge_proxy_frozen_writes_total", "Writes of frozen users refused by the proxy",
    registry=REGISTRY)
PROXY_BACKEND_ERRORS = Counter(
    "ocbridge_proxy_backend_errors_total", "Backend failures answered by the proxy",
    ["stack", "kind"], registry=REGISTRY)
PROXY_BYTES = Counter(
    "ocbridge_proxy_bytes_total", "Body bytes through the proxy", ["stack", "direction"],
    registry=REGISTRY)
PROXY_SPLICED_BYTES = Counter(
    "ocbridge_proxy_spliced_bytes_total",
    "Response body bytes moved socket to socket by splice(2), without a copy through the proxy "
    "(part of ocbridge_proxy_bytes_total)", ["stack"], registry=REGISTRY)
PROXY_EPOCH = Gauge(
    "ocbridge_proxy_routing_epoch", "Routing epoch this proxy process routes by",
    registry=REGISTRY)
PROXY_USERS = Gauge(
    "ocbridge_proxy_users", "Users in the routing table by state", ["state"], registry=REGISTRY)
LIFECYCLE_USERS = Gauge(
    "ocbridge_lifecycle_users", "Users per migration lifecycle state (bridge/lifecycle.py), as "
    "`ocbridge status` last read them", ["state"], registry=REGISTRY)
CUTOVER_FREEZE = Histogram(
    "ocbridge_cutover_freeze_seconds", "How long a cutover kept one user's writes frozen",
    registry=REGISTRY, buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300))
CUTOVERS = Counter(
    "ocbridge_cutovers_total", "Cutovers by outcome: new (flipped) or legacy (failed, returned)",
    ["outcome"], registry=REGISTRY)


PROXY_SHADOW = Counter(
    "ocbridge_proxy_shadow_requests_total",
    "Reads mirrored to the other stack by outcome: same, different, error, dropped (queue "
    "full), skipped (request body too large)", ["outcome"], registry=REGISTRY)
PROXY_SHADOW_DIFFERENCES = Counter(
    "ocbridge_proxy_shadow_differences_total",
    "Differences between the two stacks' answers to mirrored reads, by kind (status, header, "
    "body, href, prop) and field (a known property or header name, else other)",
    ["kind", "field"], registry=REGISTRY)
PROXY_SHADOW_QUEUE = Gauge(
    "ocbridge_proxy_shadow_queue", "Mirror requests waiting in this proxy process",
    registry=REGISTRY)

#: the proxy's labelled children, looked up once: `labels()` takes a lock and builds a key
#: on every call, a measurable part of the proxy's CPU per request (bench/proxy)
_PROXY_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}


def observe_proxy(stack: str, reason: str, status: int, seconds: float, bytes_in: int,
                  bytes_out: int) -> None:
    key = (stack, reason, status // 100)
    children = _PROXY_CHILDREN.get(key)
    if children is None:
        children = (PROXY_REQUESTS.labels(stack, reason, f"{status // 100}xx"),
                    PROXY_LATENCY.labels(stack), PROXY_BYTES.labels(stack, "in"),
                    PROXY_BYTES.labels(stack, "out"))
        _PROXY_CHILDREN[key] = children
    requests, latency, bytes_up, bytes_down = children
    requests.inc()
    latency.observe(seconds)
    if bytes_in:
        bytes_up.inc(bytes_in)
    if bytes_out:
        bytes_down.inc(bytes_out)


def observe_request(method: str, status: int, seconds: float) -> None:
    label = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(label, f"{status // 100}xx").inc()
    HTTP_LATENCY.labels(label).observe(seconds)


def count_bytes(direction: str, n: int) -> None:
    STORAGE_BYTES.labels("in" if direction == "in" else "out").inc(n)


def write_textfile(path: str) -> None:
    """For one-shot commands: the metrics in node_exporter's textfile-collector format."""
    from prometheus_client import write_to_textfile

    write_to_textfile(path, REGISTRY)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
