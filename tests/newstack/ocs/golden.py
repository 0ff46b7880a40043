"""Access to shared/legacy-oc10/samples (graded in its INDEX.md) for the OCS golden tests."""

import json
import re
from html import unescape
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
SAMPLES = REPO_ROOT.parent / "shared" / "legacy-oc10" / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def http_body(name: str) -> bytes:
    """The body of a `*.http` / `*.http.txt` sample: everything after the first blank line."""
    return sample(name).split(b"\n\n", 1)[1]


def json_sample(name: str) -> Any:
    return json.loads(sample(name))


_TOKEN = re.compile(rb"<\?xml[^>]*\?>\s*|<(/?)([A-Za-z_][\w.\-]*)([^>]*?)(/?)>|([^<]+)")


def xml_to_php(raw: bytes) -> dict[str, Any]:
    """The PHP array an XML sample was rendered from: `<x/>` -> None (null or an empty array
    render alike), `<x></x>` -> '', children all named `element` -> list, else a dict.

    Whitespace-only text between tags is layout and dropped; the samples carry no attributes."""
    stack: list[tuple[str, list[tuple[str, Any]], list[str]]] = [("", [], [])]
    for match in _TOKEN.finditer(raw):
        closing, name, attrs, empty, text = match.groups()
        if text is not None:
            stack[-1][2].append(unescape(text.decode("utf-8")))
        elif name is None:
            continue  # the XML declaration
        elif attrs.strip():
            raise ValueError(f"attributes are not expected here: {attrs!r}")
        elif empty:
            stack[-1][1].append((name.decode(), None))
        elif not closing:
            stack.append((name.decode(), [], []))
        else:
            tag, children, texts = stack.pop()
            assert tag == name.decode(), f"</{name.decode()}> closes <{tag}>"
            value: Any
            if children:
                if all(key == "element" for key, _ in children):
                    value = [child for _, child in children]
                else:
                    value = dict(children)
            else:
                value = "".join(texts)
            stack[-1][1].append((tag, value))
    (root,) = stack
    return dict(root[1])


def meta_block(xml: bytes) -> bytes:
    """The exact bytes from ` <meta>` to ` </meta>\\n`."""
    start = xml.index(b" <meta>")
    end = xml.index(b" </meta>\n") + len(b" </meta>\n")
    return xml[start:end]
