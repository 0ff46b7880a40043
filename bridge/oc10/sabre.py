"""ownCloud 10's WebDAV error bodies (Sabre 4.7's pretty-printed DOM documents), byte for byte.

Shared by the new stack (newstack/dav/errors.py) and the proxy's own answers (proxy/errors.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

CONTENT_TYPE: Final = "application/xml; charset=utf-8"

#: an extra child of <d:error>: (qualified name, text or nested children); '' gives <name/>
ErrorChild = tuple[str, "str | Sequence[ErrorChild]"]

HEAD: Final = '<?xml version="1.0" encoding="utf-8"?>\n'
ERROR_OPEN: Final = '<d:error xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns"'
OC_XMLNS: Final = ' xmlns:o="http://owncloud.org/ns"'


def dom_text(value: str) -> str:
    """Text as PHP's DOMDocument::saveXML writes it: & < > and CR escaped, quotes not."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def message_text(message: str) -> str:
    # Sabre passes the message through htmlspecialchars(), which gives '' for invalid UTF-8
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return dom_text(message)


def element(name: str, text: str, indent: int, attrs: str = "") -> str:
    pad = "  " * indent
    if not text:
        return f"{pad}<{name}{attrs}/>\n"
    return f"{pad}<{name}{attrs}>{text}</{name}>\n"


def children(items: Sequence[ErrorChild], indent: int) -> str:
    out = []
    for name, value in items:
        if isinstance(value, str):
            out.append(element(name, dom_text(value), indent))
        elif not value:
            out.append(element(name, "", indent))
        else:
            pad = "  " * indent
            out.append(f"{pad}<{name}>\n{children(value, indent + 1)}{pad}</{name}>\n")
    return "".join(out)


def sabre_error_body(exception: str, message: str, extra: Sequence[ErrorChild] = ()) -> bytes:
    """The body Sabre\\DAV\\Server::start() writes for an exception: a pretty-printed DOM
    document (2-space indent), <s:message/> when empty, extra children after the message
    (e.g. [('s:header', 'If-Match')])."""
    return (HEAD + ERROR_OPEN + ">\n"
            + element("s:exception", dom_text(exception), 1)
            + element("s:message", message_text(message), 1)
            + children(extra, 1)
            + "</d:error>\n").encode("utf-8")
