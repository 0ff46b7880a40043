"""PHP 7.4's json_encode, XMLWriter, round() and float-to-string, as ownCloud 10 uses them.

Values are PHP arrays in Python clothes: dict = associative array, list = list, and an empty
dict is the empty PHP array (`[]` in JSON). Used by envelope.py (OCS bodies) and status.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeGuard

# ---------------------------------------------------------------------------------------------
# Numbers


def _digits(value: float, precision: int) -> tuple[str, int]:
    """zend_dtoa: significant digits (no trailing zeros) and the decimal point position.

    precision 0 = mode 0 (shortest round-trip, PHP's serialize_precision -1), else mode 2
    (correctly rounded to `precision` significant digits)."""
    if value == 0:
        return "0", 1
    text = repr(abs(value)) if precision == 0 else f"{abs(value):.{precision - 1}e}"
    _, digit_tuple, exponent = Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    return digits, len(digit_tuple) + exponent


def php_gcvt(value: float, precision: int, exp_char: str) -> str:
    """main/snprintf.c php_gcvt(): `precision` <= 0 means mode 0 with 17 digits."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"PHP cannot encode {value!r} here")
    ndigit = precision if precision > 0 else 17
    digits, decpt = _digits(value, precision if precision > 0 else 0)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if (decpt < -3) if decpt < 0 else (decpt > ndigit):
        exp = decpt - 1
        mantissa = digits[0] + "." + (digits[1:] or "0")
        return f"{sign}{mantissa}{exp_char}{'-' if exp < 0 else '+'}{abs(exp)}"
    if decpt < 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    whole = digits[:decpt].ljust(decpt, "0")
    frac = digits[decpt:]
    if frac:
        return f"{sign}{whole or '0'}.{frac}"
    return f"{sign}{whole}"


def php_float_str(value: float) -> str:
    """`(string) $float` with the default `precision` = 14: 0.1+0.2 -> '0.3', 1e15 -> '1.0E+15'."""
    return php_gcvt(value, 14, "E")


def php_round(value: float, places: int = 0) -> float:
    """PHP 7.4 round() (PHP_ROUND_HALF_UP), including its pre-rounding to 15 significant digits."""
    if not math.isfinite(value) or value == 0.0:
        return value

    def pow10(power: int) -> float:
        return 10.0 ** power

    def helper(v: float) -> float:
        return math.floor(v + 0.5) if v >= 0.0 else math.ceil(v - 0.5)

    def get_basic(v: float, p: int) -> float:
        f = pow10(abs(p))
        return v * f if p >= 0 else v / f

    precision_places = 14 - math.floor(math.log10(abs(value)))
    f1 = pow10(abs(places))
    if precision_places > places and precision_places - 15 < places:
        # pre-round to the precision FP guarantees, then move the point to `places`
        tmp = helper(get_basic(value, precision_places))
        tmp = tmp / pow10(abs(places - precision_places))
    else:
        tmp = value * f1 if places >= 0 else value / f1
        if abs(tmp) >= 1e15:
            return value
    tmp = helper(tmp)
    return tmp / f1 if places > 0 else tmp * f1


def human_file_size(size: int) -> str:
    """OC_Helper::humanFileSize: '0 B', '5 GB', '1.5 TB' (the form oC10 stores as a user quota)."""
    if size < 0:
        return "?"
    if size < 1024:
        return f"{size} B"
    value = php_round(size / 1024, 0)
    for unit in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            return f"{php_float_str(value)} {unit}"
        value = php_round(value / 1024, 1)
    return f"{php_float_str(value)} PB"


# ---------------------------------------------------------------------------------------------
# JSON


def _is_php_list(value: Mapping[Any, Any]) -> bool:
    """A dict whose keys are exactly 0..n-1 (ints or canonical integer strings) is a PHP list."""
    for index, key in enumerate(value):
        if key != index and key != str(index):
            return False
    return True


#: what php_json_escape_string escapes by default: controls, '"', '\\', '/', and non-ASCII
#: (0x7f stays raw, unlike Python's ensure_ascii)
_JSON_ESCAPED = re.compile("[\x00-\x1f\"\\\\/\x80-\U0010ffff]")
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _JSON_SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if 0xD800 <= code < 0xE000:
        raise ValueError("a lone surrogate is not UTF-8; PHP's json_encode would fail")
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_encode(value: object, *, hex_tag: bool = False) -> str:
    """PHP json_encode($value[, JSON_HEX_TAG]): compact, `\\/`, `\\uXXXX` for non-ASCII
    (surrogate pairs above U+FFFF), floats as PHP writes them, empty dicts as `[]`."""
    out: list[str] = []
    _encode(value, out)
    text = "".join(out)
    if hex_tag:
        text = text.replace("<", "\\u003C").replace(">", "\\u003E")
    return text


def _encode(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(php_gcvt(value, 0, "e"))
    elif isinstance(value, str):
        out.append('"' + _JSON_ESCAPED.sub(_json_escape, value) + '"')
    elif isinstance(value, Mapping):
        if _is_php_list(value):
            _encode(list(value.values()), out)
            return
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            _encode(str(key), out)
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as PHP would")


# ---------------------------------------------------------------------------------------------
# XML (OC_API::toXML over PHP's XMLWriter with setIndent(true): libxml2's xmlTextWriter)

#: is_numeric() of PHP 7.4: leading whitespace allowed, trailing not (PHP 8 allows both)
_PHP_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def php_is_numeric(key: object) -> bool:
    if isinstance(key, bool):
        return False
    if isinstance(key, int | float):
        return True
    return isinstance(key, str) and _PHP_NUMERIC.fullmatch(key) is not None


def php_string(value: object) -> str | None:
    """The string PHP passes to XMLWriter for a scalar; None stays None (an empty element)."""
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return ""
    if isinstance(value, float):
        return php_float_str(value)
    return str(value)


def _escape_text(text: str) -> str:
    """xmlEncodeSpecialChars: & < > " and CR."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
    )


_ATTR_ESCAPES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
    "\n": "&#10;", "\r": "&#13;", "\t": "&#9;",
}


def _escape_attr(text: str) -> str:
    """xmlBufAttrSerializeTxtContent without a document encoding: non-ASCII as `&#xHEX;`."""
    return "".join(
        _ATTR_ESCAPES.get(ch) or (ch if ord(ch) < 0x80 else f"&#x{ord(ch):X};") for ch in text
    )


@dataclass
class _OpenElement:
    name: str
    #: '<name' written, '>' not yet: attributes may still follow
    start_tag_open: bool = True


class XmlWriter:
    """The subset of libxml2's indenting xmlTextWriter (one space per level) that OC_API::toXML
    drives: an element's end tag is indented only if children, not text, came before it."""

    def __init__(self) -> None:
        self._out: list[str] = ['<?xml version="1.0"?>\n']
        self._stack: list[_OpenElement] = []
        self._doindent = True

    def start_element(self, name: str) -> None:
        if self._stack and self._stack[-1].start_tag_open:
            self._out.append(">\n")
            self._stack[-1].start_tag_open = False
        self._out.append(" " * len(self._stack) + "<" + name)
        self._stack.append(_OpenElement(name))

    def write_attribute(self, name: str, value: str) -> bool:
        """Only while the start tag is open; otherwise PHP returns false and writes nothing."""
        if not self._stack or not self._stack[-1].start_tag_open:
            return False
        self._out.append(f' {name}="{_escape_attr(value)}"')
        return True

    def write_text(self, text: str) -> None:
        if self._stack and self._stack[-1].start_tag_open:
            self._out.append(">")
            self._stack[-1].start_tag_open = False
        self._doindent = False
        self._out.append(_escape_text(text))

    def end_element(self) -> None:
        element = self._stack.pop()
        if element.start_tag_open:
            self._out.append("/>\n")
        else:
            if self._doindent:
                self._out.append(" " * len(self._stack))
            self._out.append(f"</{element.name}>\n")
        self._doindent = True

    def write_element(self, name: str, text: str | None) -> None:
        self.start_element(name)
        if text is not None:
            self.write_text(text)
        self.end_element()

    def output(self) -> bytes:
        while self._stack:
            self.end_element()
        return "".join(self._out).encode("utf-8")


def _items(value: Mapping[Any, Any] | Sequence[Any]) -> list[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    return list(enumerate(value))


def _is_array(value: object) -> TypeGuard[Mapping[Any, Any] | Sequence[Any]]:
    return isinstance(value, Mapping) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)
    )


def to_xml(array: Mapping[Any, Any] | Sequence[Any], writer: XmlWriter) -> None:
    """OC_API::toXML: numeric keys become <element>, '@name' keys become attributes."""
    for key, value in _items(array):
        if isinstance(key, str) and key.startswith("@"):
            if isinstance(value, Mapping):
                for attr, attr_value in value.items():
                    writer.write_attribute(str(attr), php_string(attr_value) or "")
            else:
                writer.write_attribute(key[1:], php_string(value) or "")
            continue
        name = "element" if php_is_numeric(key) else str(key)
        if _is_array(value):
            writer.start_element(name)
            to_xml(value, writer)
            writer.end_element()
        else:
            writer.write_element(name, php_string(value))


def xml_document(array: Mapping[Any, Any]) -> bytes:
    """XMLWriter openMemory + setIndent(true) + startDocument() + toXML + endDocument."""
    writer = XmlWriter()
    to_xml(array, writer)
    return writer.output()
