"""Answers the proxy gives itself, in the body format of ownCloud 10's Sabre errors.

The format is newstack/dav/errors.py's `sabre_error_body` (a pretty-printed DOM document);
the proxy does not import newstack, so the few lines are repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CONTENT_TYPE: Final = "application/xml; charset=utf-8"
_SABRE: Final = "Sabre\\DAV\\Exception\\"


def _text(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def sabre_body(exception: str, message: str) -> bytes:
    message_line = (f"  <s:message>{_text(message)}</s:message>\n" if message
                    else "  <s:message/>\n")
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns">\n'
            f"  <s:exception>{_text(exception)}</s:exception>\n"
            + message_line + "</d:error>\n").encode("utf-8")


@dataclass(frozen=True)
class ProxyAnswer:
    """A complete response made by the proxy."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def header_list(self) -> list[tuple[bytes, bytes]]:
        out = [(b"content-type", CONTENT_TYPE.encode()),
               (b"content-length", str(len(self.body)).encode())]
        out.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers)
        return out


def bad_gateway(stack: str, what: str) -> ProxyAnswer:
    return ProxyAnswer(502, sabre_body(_SABRE + "ServiceUnavailable",
                                       f"The {stack} backend failed: {what}"))


def gateway_timeout(stack: str, what: str) -> ProxyAnswer:
    return ProxyAnswer(504, sabre_body(_SABRE + "ServiceUnavailable",
                                       f"The {stack} backend did not answer in time: {what}"))


def refused(status: int, message: str) -> ProxyAnswer:
    """A request the proxy will not route (ambiguous or oversized credentials: 400, 431)."""
    return ProxyAnswer(status, sabre_body(_SABRE + "BadRequest", message))
