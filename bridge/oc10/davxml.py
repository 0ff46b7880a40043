"""Reading ownCloud's WebDAV answers for comparison: property values in a canonical text form.

Pure helpers shared by the verify gate (migrate/verify.py) and the proxy's shadow and replay
comparisons (proxy/shadow.py): two servers' answers compare equal exactly when their
canonical forms do.
"""

from __future__ import annotations

from typing import Final
from xml.etree.ElementTree import Element

#: short prefixes for the namespaces ownCloud answers use
PREFIXES: Final = {"DAV:": "d", "http://owncloud.org/ns": "oc", "http://nextcloud.org/ns": "nc",
                   "http://open-collaboration-services.org/ns": "ocs",
                   "http://sabredav.org/ns": "s"}


DAV: Final = "{DAV:}"


def response_props(response: Element, origin: str = "") -> dict[str, tuple[int, str]]:
    """One <d:response>: {Clark name: (propstat status, canonical value)}, and '' → the
    response's own status when it has one; `origin` (a server's base URL) becomes '<server>'
    so that absolute URLs of two servers compare equal."""
    props: dict[str, tuple[int, str]] = {}
    own_status = response.find(f"{DAV}status")
    if own_status is not None:
        props[""] = (status_code(own_status.text), "")
    for propstat in response.findall(f"{DAV}propstat"):
        status = status_code(propstat.findtext(f"{DAV}status"))
        prop = propstat.find(f"{DAV}prop")
        for child in prop if prop is not None else ():
            value = canonical(child)
            props[child.tag] = (status, value.replace(origin, "<server>") if origin else value)
    return props


def status_code(line: str | None) -> int:
    """'HTTP/1.1 404 Not Found' → 404 (0 when unreadable)."""
    parts = (line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def canonical(element: Element) -> str:
    """An element's content with short prefixes: text, or '<oc:checksum>SHA1:…</oc:checksum>'."""
    children = list(element)
    if not children:
        return element.text or ""
    out = [] if (element.text or "").strip() == "" else [element.text or ""]
    for child in children:
        name = short_name(child.tag)
        attrs = "".join(f' {short_name(k)}="{v}"' for k, v in sorted(child.attrib.items()))
        inner = canonical(child)
        out.append(f"<{name}{attrs}>{inner}</{name}>" if inner else f"<{name}{attrs}/>")
        if (child.tail or "").strip():
            out.append(child.tail or "")
    return "".join(out)


def short_name(clark: str) -> str:
    """'{DAV:}getetag' → 'd:getetag'; unknown namespaces stay in Clark notation."""
    if not clark.startswith("{"):
        return clark
    ns, _, local = clark[1:].partition("}")
    return f"{PREFIXES[ns]}:{local}" if ns in PREFIXES else clark
