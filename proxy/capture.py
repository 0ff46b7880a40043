"""`ocbridge capture`: mitmproxy as a reverse proxy in front of one stack (ownCloud 10, before
anyone migrates) writing every exchange to a mitmproxy flow file, credentials redacted.
replay.py reads the file; the user name of Basic auth is kept so it knows whose request it was.

Redacted: the password of Basic auth, every other Authorization/Proxy-Authorization credential,
cookie values both ways, the password field of login forms, and the answers that hand out
secrets (app passwords, OAuth2 tokens). File contents are not: the flows hold what users read
and wrote, up to `stream_large_bodies` (larger bodies are streamed and not stored).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import signal
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import parse_qsl, urlencode

from mitmproxy import http, io
from mitmproxy.http import Headers

REDACTED: Final = "ocbridge-redacted"
#: bodies over this size pass through mitmproxy streamed, not stored in the flow
STREAM_LARGE_BODIES: Final = "1m"
#: answers whose bodies carry secrets: app passwords (OCS) and OAuth2 tokens
_SECRET_ANSWERS: Final = ("/ocs/v1.php/core/getapppassword", "/ocs/v2.php/core/getapppassword",
                          "/index.php/apps/oauth2/api/v1/token", "/apps/oauth2/api/v1/token")
_LOGIN_FORM: Final = ("/index.php/login", "/login")


def redact_authorization(value: str) -> str:
    """Basic user:password → Basic user:<REDACTED> (base64 as before); any other scheme keeps
    its name only."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return f"Basic {REDACTED}"
        user = decoded.partition(":")[0]
        return "Basic " + base64.b64encode(f"{user}:{REDACTED}".encode()).decode("ascii")
    return f"{scheme} {REDACTED}" if rest else REDACTED


def redact_cookie(value: str) -> str:
    """name=value; name2=value2 → every value replaced, names kept."""
    names = [part.split("=", 1)[0].strip() for part in value.split(";") if part.strip()]
    return "; ".join(f"{name}={REDACTED}" for name in names)


def redact_set_cookie(value: str) -> str:
    """The cookie's value replaced; its name and attributes kept."""
    first, sep, attributes = value.partition(";")
    name = first.split("=", 1)[0].strip()
    return f"{name}={REDACTED}{sep}{attributes}"


def _redact_headers(headers: Headers, name: str, how: Callable[[str], str]) -> None:
    values = headers.get_all(name)
    if values:
        headers.set_all(name, [how(v) for v in values])


def redact(flow: http.HTTPFlow) -> http.HTTPFlow:
    """A copy of `flow` without credentials (the live flow is left as it is)."""
    copy: http.HTTPFlow = flow.copy()
    request = copy.request
    for name in ("authorization", "proxy-authorization"):
        _redact_headers(request.headers, name, redact_authorization)
    _redact_headers(request.headers, "cookie", redact_cookie)
    path = request.path.split("?", 1)[0]
    if request.method == "POST" and path.endswith(_LOGIN_FORM) and request.raw_content:
        try:
            fields = parse_qsl(request.raw_content.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            request.content = REDACTED.encode()
        else:
            request.text = urlencode([(k, REDACTED if k in ("password", "requesttoken") else v)
                                      for k, v in fields])
    response = copy.response
    if response is not None:
        _redact_headers(response.headers, "set-cookie", redact_set_cookie)
        if path.endswith(_SECRET_ANSWERS) and response.raw_content:
            response.headers.pop("content-encoding", None)
            response.content = REDACTED.encode()
    return copy


class CaptureAddon:
    """Writes each finished flow, redacted, to the flow file (flushed at once, so a capture
    killed midway keeps every flow it had)."""

    def __init__(self, out: BinaryIO, ready: Callable[[list[str]], None] | None = None) -> None:
        self._out = out
        self._writer = io.FlowWriter(out)
        self._ready = ready
        self.count = 0

    def running(self) -> None:
        from mitmproxy import ctx

        if self._ready is not None:
            server = ctx.master.addons.get("proxyserver")
            self._ready([f"http://{host}:{port}" for host, port, *_ in server.listen_addrs()])

    def response(self, flow: http.HTTPFlow) -> None:
        self._write(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._write(flow)

    def _write(self, flow: http.HTTPFlow) -> None:
        self._writer.add(redact(flow))
        self._out.flush()
        self.count += 1


async def capture(upstream: str, host: str, port: int, out: Path, *, confdir: Path | None = None,
                  cert: Path | None = None,
                  ready: Callable[[list[str]], None] | None = None) -> int:
    """Serve as a reverse proxy to `upstream` on host:port until SIGINT/SIGTERM, appending each
    flow to `out`; returns the number of flows written. `cert` (PEM with key) for clients that
    speak TLS; else mitmproxy mints certificates from its CA in `confdir`."""
    # imported here: mitmproxy's addon package is heavy and only this command needs it
    from mitmproxy import master, options
    from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, tlsconfig

    opts = options.Options()
    runner = master.Master(opts)
    with out.open("ab") as stream:
        addon = CaptureAddon(stream, ready)
        runner.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(),
                          tlsconfig.TlsConfig(),
                          errorcheck.ErrorCheck(repeat_errors_on_stderr=True), addon)
        settings: dict[str, object] = {
            "mode": [f"reverse:{upstream}"], "listen_host": host, "listen_port": port,
            # the stack sees the public host, as behind the routing proxy
            "keep_host_header": True, "connection_strategy": "lazy",
            "stream_large_bodies": STREAM_LARGE_BODIES}
        if confdir is not None:
            settings["confdir"] = str(confdir)
        if cert is not None:
            settings["certs"] = [f"*={cert}"]
        opts.update(**settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, runner.shutdown)
        try:
            await runner.run()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    return addon.count
