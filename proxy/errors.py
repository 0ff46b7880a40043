"""Answers the proxy gives itself, in the body format of ownCloud 10's Sabre errors.

The bodies come from bridge/oc10/sabre.py, which the new stack's own errors use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bridge.oc10 import sabre

CONTENT_TYPE: Final = sabre.CONTENT_TYPE
_SABRE: Final = "Sabre\\DAV\\Exception\\"
sabre_body = sabre.sabre_error_body


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
