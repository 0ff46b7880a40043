"""Prometheus metrics of every ocbridge process, in one place (prefix ocbridge_).

Labels are bounded: methods, status classes, stacks, reasons; never user ids or paths.
"""

from __future__ import annotations

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


def observe_request(method: str, status: int, seconds: float) -> None:
    label = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(label, f"{status // 100}xx").inc()
    HTTP_LATENCY.labels(label).observe(seconds)


def count_bytes(direction: str, n: int) -> None:
    STORAGE_BYTES.labels("in" if direction == "in" else "out").inc(n)


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
