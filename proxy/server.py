"""Runs the proxy on uvicorn (uvloop + httptools): one process, or several sharing one
listening socket (forked after binding; each builds its own app, pools and routing view)."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from bridge.config import Settings
from bridge.processes import supervise
from proxy.app import ProxyApp
from proxy.zerocopy import ZeroCopyHttpToolsProtocol

log = logging.getLogger("ocbridge.proxy")


def problems(settings: Settings) -> list[str]:
    """Proxy settings that cannot work (zero timeouts or intervals)."""
    p = settings.proxy
    found = [f"proxy.{name}: must be at least 1, got {value}" for name, value in (
        ("connect_timeout", p.connect_timeout), ("read_timeout", p.read_timeout),
        ("refresh_ms", p.refresh_ms), ("cookie_max_age", p.cookie_max_age),
        ("retry_after", p.retry_after)) if value < 1]
    found += [f"proxy.{name}: must be at least 1, got {value}" for name, value in (
        ("shadow_queue", p.shadow_queue), ("shadow_workers", p.shadow_workers),
        ("shadow_multistatus_kb", p.shadow_multistatus_kb)) if value < 1]
    oidc = {"oidc_issuer": p.oidc_issuer, "oidc_audience": p.oidc_audience,
            "oidc_jwks": p.oidc_jwks}
    if any(oidc.values()) and not all(oidc.values()):
        missing = ", ".join(f"proxy.{k}" for k, v in oidc.items() if not v)
        found.append(f"OIDC bearer tokens need proxy.oidc_issuer, oidc_audience and oidc_jwks; "
                     f"missing: {missing}")
    if not p.oidc_uid_claim:
        found.append("proxy.oidc_uid_claim: must name a claim")
    if p.lookup_cache_seconds < 0:
        found.append(f"proxy.lookup_cache_seconds: must not be negative, got "
                     f"{p.lookup_cache_seconds}")
    return found


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """uvicorn as the proxy needs it: no access log of its own (the proxy writes one), no
    Server/Date headers of its own (the backends' pass through), X-Forwarded-* untrusted."""
    return uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False,
                          server_header=False, date_header=False, proxy_headers=False,
                          http=ZeroCopyHttpToolsProtocol, loop="uvloop", log_config=None,
                          timeout_keep_alive=60, timeout_graceful_shutdown=30)


def serve(settings: Settings, host: str, port: int, workers: int,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    # one access-log record per request: skip what LogRecord would look up and nobody reads
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # (3.12+; not in mypy's stubs yet) the asyncio task's name is not looked up either
    setattr(logging, "logAsyncioTasks", False)  # noqa: B010
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{sock.getsockname()[1]}"
    if workers <= 1:
        if ready is not None:
            ready(url)
        uvicorn.Server(uvicorn_config(ProxyApp(settings), host, port)).run(sockets=[sock])
        return
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                server = uvicorn.Server(uvicorn_config(ProxyApp(settings), host, port))
                server.run(sockets=[sock])
            except BaseException:
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        children.append(pid)
    if ready is not None:
        ready(url)
    supervise(children)
