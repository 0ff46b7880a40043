"""Read and write ownCloud 10's config/config.php without running PHP (parser + var_export writer).

OC10Config picks the settings ocbridge needs from it and builds the database URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NoReturn
from urllib.parse import quote

from bridge.errors import LegacyInstanceError
from bridge.oc10.formats import php_float_str

_PHP_INT_MAX: Final = 2**63 - 1
_PHP_INT_MIN: Final = -(2**63)


class ConfigPhpError(LegacyInstanceError, ValueError):
    """config.php cannot be read or lacks what ocbridge needs; line 0 means the whole file."""

    def __init__(self, path: Path | str | None, line: int, column: int, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.message = message
        where = str(path) if path is not None else "config.php"
        if line > 0:
            where = f"{where}:{line}:{column}"
        super().__init__(f"{where}: {message}")


# --- values ---------------------------------------------------------------------------------------


class _PhpArray:
    """A PHP array while parsing: ordered keys, PHP key coercion and PHP's next free index."""

    __slots__ = ("items", "next_index")

    def __init__(self) -> None:
        self.items: dict[int | str, object] = {}
        self.next_index = 0

    def set(self, key: int | str, value: object) -> None:
        self.items[key] = value
        if isinstance(key, int) and key >= self.next_index:
            self.next_index = key + 1

    def append(self, value: object) -> None:
        self.set(self.next_index, value)


_CANONICAL_INT = re.compile(r"(?:0|-?[1-9][0-9]*)\Z")


def _php_key(key: object) -> int | str:
    """The key PHP would store for `key` (e.g. '5' → 5, true → 1, null → ''); ValueError if none."""
    if isinstance(key, bool):
        return int(key)
    if isinstance(key, int):
        return key
    if isinstance(key, str):
        if _CANONICAL_INT.match(key) and _PHP_INT_MIN <= int(key) <= _PHP_INT_MAX:
            return int(key)
        return key
    if key is None:
        return ""
    if isinstance(key, float):
        return int(key) if abs(key) < 2.0**63 else 0
    raise ValueError(f"a {type(key).__name__} cannot be an array key")


def _php_string(value: object) -> str:
    """PHP's string conversion of a scalar (true → '1', false/null → '', floats at precision 14)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return php_float_str(value)
    raise ValueError("an array cannot be used as a string")


def _to_python(value: object) -> object:
    if isinstance(value, _PhpArray):
        keys = list(value.items)
        if keys == list(range(len(keys))):
            return [_to_python(v) for v in value.items.values()]
        return {k: _to_python(v) for k, v in value.items.items()}
    return value


def _array_merge(first: _PhpArray, second: _PhpArray) -> _PhpArray:
    """PHP array_merge(): string keys of the second win, integer keys are renumbered."""
    merged = _PhpArray()
    for source in (first, second):
        for key, value in source.items.items():
            if isinstance(key, int):
                merged.append(value)
            else:
                merged.set(key, value)
    return merged


# --- tokenizer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # open, close, var, str, int, float, ident, op, eof
    value: object
    line: int
    column: int


_OPEN_TAG = re.compile(r"<\?php(?:[ \t]|\r?\n|\Z)", re.IGNORECASE)
_NAME: Final = r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*"
# optionally namespace-qualified, e.g. \OC or \true
_IDENT = re.compile(rf"\\?{_NAME}(?:\\{_NAME})*")
_VARIABLE = re.compile(rf"\$({_NAME})")
_LNUM: Final = r"[0-9]+(?:_[0-9]+)*"
_DNUM: Final = rf"(?:(?:{_LNUM})?\.{_LNUM}|{_LNUM}\.(?:{_LNUM})?)"
_NUMBER = re.compile(
    rf"(?P<hex>0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*)"
    rf"|(?P<bin>0[bB][01]+(?:_[01]+)*)"
    rf"|(?P<float>(?:{_DNUM}|{_LNUM})[eE][+-]?{_LNUM}|{_DNUM})"
    rf"|(?P<int>{_LNUM})"
)
_OPERATORS: Final = ("=>", "::", "=", ";", ",", "(", ")", "[", "]", ".", "-", "+", "*", "/", "%")
_SIMPLE_ESCAPES: Final = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "v": b"\v",
    "e": b"\x1b",
    "f": b"\f",
    "\\": b"\\",
    "$": b"$",
    '"': b'"',
}


def _decode(raw: bytes | bytearray) -> str:
    # PHP strings are bytes: keep invalid UTF-8 recoverable instead of failing on it
    return bytes(raw).decode("utf-8", "surrogateescape")


class _Lexer:
    def __init__(self, text: str, path: Path | str | None) -> None:
        self.text = text
        self.path = path
        self.pos = 0
        self.in_php = False
        # (position, its line number) of the last lookup, so counting lines stays linear
        self._line_mark = (0, 1)

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        line, column = self._where(self.pos if pos is None else pos)
        raise ConfigPhpError(self.path, line, column, message)

    def _where(self, pos: int) -> tuple[int, int]:
        mark, line = self._line_mark
        if pos < mark:
            mark, line = 0, 1
        line += self.text.count("\n", mark, pos)
        self._line_mark = (pos, line)
        return line, pos - (self.text.rfind("\n", 0, pos) + 1) + 1

    def _token(self, kind: str, value: object, start: int) -> _Token:
        line, column = self._where(start)
        return _Token(kind, value, line, column)

    def next_token(self) -> _Token:
        text = self.text
        if not self.in_php:
            # text outside <?php … ?> is output by PHP, not configuration: skip it
            match = _OPEN_TAG.search(text, self.pos)
            if match is None:
                self.pos = len(text)
                return self._token("eof", None, self.pos)
            self.in_php = True
            self.pos = match.end()
            return self._token("open", None, match.start())
        self._skip_space_and_comments()
        start = self.pos
        if start >= len(text):
            return self._token("eof", None, start)
        ch = text[start]
        if text.startswith("?>", start):
            self.in_php = False
            self.pos = start + 2
            # PHP swallows one newline right after a closing tag
            if text.startswith("\r\n", self.pos):
                self.pos += 2
            elif text.startswith("\n", self.pos):
                self.pos += 1
            return self._token("close", None, start)
        if ch == "'":
            return self._token("str", self._single_quoted(), start)
        if ch == '"':
            return self._token("str", self._double_quoted(), start)
        if text.startswith("<<<", start):
            self.fail("heredoc/nowdoc strings are not supported; use a quoted string")
        if ch == "$":
            var = _VARIABLE.match(text, start)
            if var is None:
                self.fail("'$' must start a variable name")
            self.pos = var.end()
            return self._token("var", var.group(1), start)
        if "0" <= ch <= "9" or (ch == "." and "0" <= text[start + 1 : start + 2] <= "9"):
            return self._number(start)
        ident = _IDENT.match(text, start)
        if ident is not None:
            self.pos = ident.end()
            return self._token("ident", ident.group(0).lstrip("\\"), start)
        for op in _OPERATORS:
            if text.startswith(op, start):
                self.pos = start + len(op)
                return self._token("op", op, start)
        self.fail(f"unexpected character {ch!r}")

    def _skip_space_and_comments(self) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t\r\n\v\f":
                self.pos += 1
            elif ch == "#" or text.startswith("//", self.pos):
                # a line comment also ends just before a closing tag
                end = self.pos
                while end < len(text) and text[end] != "\n" and not text.startswith("?>", end):
                    end += 1
                self.pos = end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    self.fail("unterminated /* comment")
                self.pos = end + 2
            else:
                return

    def _single_quoted(self) -> str:
        text = self.text
        start = self.pos
        i = start + 1
        parts: list[str] = []
        while True:
            if i >= len(text):
                self.fail("unterminated single-quoted string", start)
            ch = text[i]
            if ch == "'":
                self.pos = i + 1
                return "".join(parts)
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in "\\'":
                parts.append(text[i + 1])
                i += 2
            else:
                parts.append(ch)
                i += 1

    def _double_quoted(self) -> str:
        text = self.text
        start = self.pos
        i = start + 1
        out = bytearray()
        while True:
            if i >= len(text):
                self.fail("unterminated double-quoted string", start)
            ch = text[i]
            if ch == '"':
                self.pos = i + 1
                return _decode(out)
            if ch == "$" and i + 1 < len(text) and _VARIABLE.match(text, i):
                self.fail("variables inside double-quoted strings are not supported", i)
            if ch == "{" and text.startswith("{$", i):
                self.fail("variables inside double-quoted strings are not supported", i)
            if ch != "\\" or i + 1 >= len(text):
                out += ch.encode("utf-8", "surrogateescape")
                i += 1
                continue
            nxt = text[i + 1]
            if nxt in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[nxt]
                i += 2
            elif octal := re.match(r"[0-7]{1,3}", text[i + 1 : i + 4]):
                out.append(int(octal.group(0), 8) & 0xFF)
                i += 1 + len(octal.group(0))
            elif nxt == "x" and (hexa := re.match(r"[0-9A-Fa-f]{1,2}", text[i + 2 : i + 4])):
                out.append(int(hexa.group(0), 16))
                i += 2 + len(hexa.group(0))
            elif nxt == "u" and text.startswith("{", i + 2):
                code = re.match(r"\{([0-9A-Fa-f]+)\}", text[i + 2 :])
                if code is None or int(code.group(1), 16) > 0x10FFFF:
                    self.fail("invalid \\u{…} escape", i)
                out += chr(int(code.group(1), 16)).encode("utf-8", "surrogatepass")
                i += 2 + len(code.group(0))
            else:
                # unknown escapes keep their backslash, as in PHP
                out += b"\\"
                i += 1

    def _number(self, start: int) -> _Token:
        match = _NUMBER.match(self.text, start)
        if match is None:
            self.fail("malformed number")
        self.pos = match.end()
        kind = match.lastgroup
        digits = match.group(0).replace("_", "")
        if kind == "float":
            return self._token("float", float(digits), start)
        if kind == "hex":
            value = int(digits[2:], 16)
        elif kind == "bin":
            value = int(digits[2:], 2)
        elif len(digits) > 1 and digits.startswith("0"):
            if not re.fullmatch(r"[0-7]+", digits):
                self.fail(f"invalid octal number {digits}", start)
            value = int(digits, 8)
        else:
            value = int(digits)
        # PHP turns integer literals that overflow into floats
        if value > _PHP_INT_MAX:
            return self._token("float", float(value), start)
        return self._token("int", value, start)


# --- parser ---------------------------------------------------------------------------------------

_UNSET: Final = object()


class _Parser:
    """Statements `$CONFIG = <array>;` and `$CONFIG[...] = <value>;`; expressions are literals."""

    def __init__(self, text: str, path: Path | str | None, server_root: str | None) -> None:
        self.path = path
        self.server_root = server_root
        # tokens are read on demand so errors surface in reading order
        self.lexer = _Lexer(text, path)
        self.tokens: list[_Token] = []
        self.index = 0
        self.config: object = _UNSET

    # token helpers
    def peek(self, offset: int = 0) -> _Token:
        wanted = self.index + offset
        while len(self.tokens) <= wanted and not (self.tokens and self.tokens[-1].kind == "eof"):
            self.tokens.append(self.lexer.next_token())
        return self.tokens[min(wanted, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def is_op(self, op: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "op" and token.value == op

    def fail(self, message: str, token: _Token | None = None) -> NoReturn:
        at = token or self.peek()
        raise ConfigPhpError(self.path, at.line, at.column, message)

    def expect_op(self, op: str, context: str) -> None:
        if not self.is_op(op):
            self.fail(f"expected '{op}' {context}, found {_describe(self.peek())}")
        self.advance()

    # statements
    def parse(self) -> object:
        while self.peek().kind != "eof":
            token = self.peek()
            if token.kind in ("open", "close") or self.is_op(";"):
                self.advance()
            elif token.kind == "var":
                self.assignment()
            else:
                self.fail(
                    f"unsupported PHP statement starting with {_describe(token)}; ocbridge reads "
                    "config.php without running it and understands only `$CONFIG = array(…);` "
                    "and `$CONFIG['key'] = value;` with literal values"
                )
        return self.config

    def assignment(self) -> None:
        var = self.advance()
        if var.value != "CONFIG":
            self.fail(f"only $CONFIG can be assigned, not ${var.value}", var)
        subscripts: list[tuple[object, _Token]] = []
        while self.is_op("["):
            bracket = self.advance()
            if self.is_op("]"):
                subscripts.append((_UNSET, bracket))
            else:
                subscripts.append((self.expression(), bracket))
            self.expect_op("]", "to close the subscript")
        self.expect_op("=", "in the assignment to $CONFIG")
        value = self.expression()
        # a closing tag ends a statement just as ';' does
        if self.peek().kind != "close":
            self.expect_op(";", "after the assignment")
        if not subscripts:
            self.config = value
            return
        if self.config is _UNSET or self.config is None or self.config is False:
            self.config = _PhpArray()
        target = self.config
        for position, (key, token) in enumerate(subscripts):
            if not isinstance(target, _PhpArray):
                self.fail("cannot index into a value that is not an array", token)
            last = position == len(subscripts) - 1
            if key is _UNSET:
                new: object = value if last else _PhpArray()
                target.append(new)
                target = new
                continue
            php_key = self.key(key, token)
            if last:
                target.set(php_key, value)
            else:
                child = target.items.get(php_key)
                if child is None or child is False:
                    child = _PhpArray()
                    target.set(php_key, child)
                target = child

    def key(self, value: object, token: _Token) -> int | str:
        try:
            return _php_key(value)
        except ValueError as exc:
            self.fail(str(exc), token)

    # expressions: additive ('.', '+', '-' share one level in PHP 7) over multiplicative
    def expression(self) -> object:
        left = self.term()
        while self.peek().kind == "op" and self.peek().value in (".", "+", "-"):
            op_token = self.advance()
            right = self.term()
            left = self.binary(str(op_token.value), left, right, op_token)
        return left

    def term(self) -> object:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().value in ("*", "/", "%"):
            op_token = self.advance()
            right = self.unary()
            left = self.binary(str(op_token.value), left, right, op_token)
        return left

    def unary(self) -> object:
        if self.is_op("-") or self.is_op("+"):
            op_token = self.advance()
            operand = self.unary()
            if isinstance(operand, bool) or not isinstance(operand, int | float):
                self.fail(f"unary '{op_token.value}' needs a number", op_token)
            if op_token.value == "+":
                return operand
            negated = -operand
            if isinstance(negated, int) and negated > _PHP_INT_MAX:
                return float(negated)
            return negated
        return self.primary()

    def binary(self, op: str, left: object, right: object, token: _Token) -> object:
        if op == ".":
            try:
                return _php_string(left) + _php_string(right)
            except ValueError as exc:
                self.fail(str(exc), token)
        numbers = []
        for operand in (left, right):
            if isinstance(operand, bool) or not isinstance(operand, int | float):
                self.fail(f"'{op}' needs numbers on both sides", token)
            numbers.append(operand)
        a, b = numbers
        if op == "%":
            ia, ib = int(a), int(b)
            if ib == 0:
                self.fail("modulo by zero", token)
            # PHP's % truncates like C: the sign follows the dividend
            return abs(ia) % abs(ib) * (-1 if ia < 0 else 1)
        result: int | float
        if op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        elif op == "*":
            result = a * b
        elif b == 0:
            self.fail("division by zero", token)
        elif isinstance(a, int) and isinstance(b, int) and a % b == 0:
            result = a // b
        else:
            result = a / b
        if isinstance(result, int) and not _PHP_INT_MIN <= result <= _PHP_INT_MAX:
            return float(result)
        return result

    def primary(self) -> object:
        token = self.peek()
        if token.kind in ("str", "int", "float"):
            self.advance()
            return token.value
        if self.is_op("["):
            self.advance()
            return self.elements("]")
        if self.is_op("("):
            self.advance()
            value = self.expression()
            self.expect_op(")", "to close the parenthesis")
            return value
        if token.kind == "ident":
            return self.identifier()
        self.fail(f"expected a value, found {_describe(token)}")

    def identifier(self) -> object:
        token = self.advance()
        name = str(token.value)
        lower = name.lower()
        if lower == "array" and self.is_op("("):
            self.advance()
            return self.elements(")")
        if lower in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[lower]
        if name in ("INF", "NAN"):
            return float(name.lower())
        if name == "PHP_INT_MAX":
            return _PHP_INT_MAX
        if name == "__DIR__" and self.path is not None:
            return str(Path(self.path).parent)
        if name == "__FILE__" and self.path is not None:
            return str(self.path)
        if name == "OC" and self.is_op("::") and self.peek(1).kind == "var":
            self.advance()
            member = self.advance()
            if member.value == "SERVERROOT" and self.server_root is not None:
                return self.server_root
            self.fail(f"OC::${member.value} is not known outside ownCloud", member)
        self.fail(
            f"{name} cannot be evaluated without running PHP; replace it with a literal value",
            token,
        )

    def elements(self, closer: str) -> _PhpArray:
        array = _PhpArray()
        while not self.is_op(closer):
            first_token = self.peek()
            first = self.expression()
            if self.is_op("=>"):
                self.advance()
                array.set(self.key(first, first_token), self.expression())
            else:
                array.append(first)
            if self.is_op(","):
                self.advance()
            elif not self.is_op(closer):
                found = _describe(self.peek())
                self.fail(f"expected ',' or '{closer}' in the array, found {found}")
        self.advance()
        return array


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "the end of the file"
    if token.kind == "close":
        return "'?>'"
    if token.kind == "open":
        return "'<?php'"
    if token.kind == "var":
        return f"${token.value}"
    if token.kind == "str":
        return "a string"
    return repr(str(token.value))


def _parse_php_array(text: str, path: Path | str | None, server_root: str | None) -> _PhpArray:
    value = _Parser(text, path, server_root).parse()
    # Config::readData ignores a file whose $CONFIG is not an array
    return value if isinstance(value, _PhpArray) else _PhpArray()


def _top_level(array: _PhpArray) -> dict[str, object]:
    return {str(k): _to_python(v) for k, v in array.items.items()}


def parse_config_php(
    text: str, path: Path | str | None = None, *, server_root: str | None = None
) -> dict[str, object]:
    """The `$CONFIG` array of one config.php text; arrays with keys 0..n-1 become lists.

    `server_root` is what `OC::$SERVERROOT` means (the ownCloud install dir).
    """
    return _top_level(_parse_php_array(text, path, server_root))


def _natural_key(name: str) -> list[tuple[str, int]]:
    # natsort() order, so that 10.config.php sorts after 9.config.php
    parts = re.split(r"([0-9]+)", name)
    return [
        (parts[i], int(parts[i + 1]) if i + 1 < len(parts) else -1)
        for i in range(0, len(parts), 2)
    ]


def _locate_config(path: Path) -> Path:
    if path.is_dir():
        for candidate in (path / "config.php", path / "config" / "config.php"):
            if candidate.is_file():
                return candidate
    elif path.is_file():
        return path
    raise ConfigPhpError(
        path, 0, 0,
        "no config.php here; pass the ownCloud install directory, its config/ directory or "
        "config.php itself",
    )


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigPhpError(path, 0, 0, f"cannot read the file: {exc.strerror or exc}") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return _decode(raw)


def load_config_php(path: Path) -> dict[str, object]:
    """config.php with every other `*.config.php` of its folder merged on top, as oC10 reads it.

    `path` may be config.php, the config/ directory or the install directory.
    """
    main = _locate_config(Path(path))
    server_root = str(main.parent.parent)
    extras = sorted(
        (p for p in main.parent.glob("*.config.php") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: _natural_key(p.name),
    )
    merged = _PhpArray()
    for file in [main, *extras]:
        merged = _array_merge(merged, _parse_php_array(_read(file), file, server_root))
    return _top_level(merged)


# --- writer (var_export) --------------------------------------------------------------------------


def _export_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    # var_export spells NUL bytes as a concatenated double-quoted "\0"
    return "'" + escaped.replace("\0", "' . \"\\0\" . '") + "'"


def _export(value: object, level: int, out: list[str]) -> None:
    if value is None:
        out.append("NULL")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        if not _PHP_INT_MIN <= value <= _PHP_INT_MAX:
            raise ValueError(f"{value} does not fit PHP's 64-bit integers")
        out.append("-9223372036854775807-1" if value == _PHP_INT_MIN else str(value))
    elif isinstance(value, float):
        text = php_float_str(value, -1)
        finite = text not in ("INF", "-INF", "NAN")
        out.append(text + ".0" if finite and "." not in text else text)
    elif isinstance(value, str):
        out.append(_export_string(value))
    elif isinstance(value, Mapping | list | tuple):
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        if level > 1:
            out.append("\n" + " " * (level - 1))
        out.append("array (\n")
        for key, item in items:
            php_key = _php_key(key)
            label = str(php_key) if isinstance(php_key, int) else _export_string(php_key)
            out.append(f"{' ' * (level + 1)}{label} => ")
            _export(item, level + 2, out)
            out.append(",\n")
        if level > 1:
            out.append(" " * (level - 1))
        out.append(")")
    else:
        raise TypeError(f"cannot write a {type(value).__name__} into config.php")


def dump_config_php(cfg: Mapping[str, object]) -> str:
    """config.php text exactly as oC10's Config::writeData produces it (PHP var_export)."""
    out = ["<?php\n$CONFIG = "]
    _export(cfg, 1, out)
    out.append(";\n")
    return "".join(out)


# --- the settings ocbridge uses -------------------------------------------------------------------

_REQUIRED: Final = ("instanceid", "secret", "datadirectory", "dbtype", "version")
_DBTYPES: Final = ("mysql", "pgsql", "sqlite3", "oci")


def _split_dbhost(dbhost: str) -> tuple[str, int | None, str | None]:
    """ConnectionFactory: `host:port` or `host:/socket`; a colon at position 0 is no separator."""
    if dbhost.find(":") > 0:
        host, rest = dbhost.split(":", 1)
        if rest and all("0" <= c <= "9" for c in rest):
            return host, int(rest), None
        return host, None, rest or None
    return dbhost, None, None


@dataclass(frozen=True)
class OC10Config:
    """The config.php settings ocbridge reads; `raw` has everything, merged as oC10 merges it."""

    instanceid: str
    passwordsalt: str = field(repr=False)
    secret: str = field(repr=False)
    datadirectory: Path
    dbtype: str
    dbname: str
    dbhost: str
    dbport: int | None
    dbsocket: str | None
    dbuser: str
    dbpassword: str = field(repr=False)
    dbtableprefix: str
    version: str
    data_fingerprint: str
    share_folder: str
    strict_login_enforced: bool
    token_auth_enforced: bool
    trusted_domains: tuple[str, ...]
    overwrite_cli_url: str | None
    raw: dict[str, object] = field(repr=False, compare=False)
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def from_file(cls, path: Path) -> OC10Config:
        """Load config.php (+ extras) from an install dir, its config/ dir or the file itself."""
        main = _locate_config(Path(path))
        return cls.from_dict(load_config_php(main), path=main)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, object], *, path: Path | None = None) -> OC10Config:
        """Validate in one pass; every missing or malformed key is named in a single error."""
        problems: list[str] = []
        # like Config::getValue, a key set to null counts as absent
        missing = [key for key in _REQUIRED if cfg.get(key) is None]
        if missing:
            problems.append("missing required keys: " + ", ".join(repr(k) for k in missing))

        def text(key: str, default: str) -> str:
            value = cfg.get(key)
            if value is None:
                return default
            try:
                return _php_string(value)
            except ValueError:
                problems.append(f"{key!r} must be a string, not an array")
                return default

        dbtype = text("dbtype", "")
        if dbtype == "sqlite":
            dbtype = "sqlite3"
        if dbtype and dbtype not in _DBTYPES:
            problems.append(f"'dbtype' is {dbtype!r}; ownCloud 10 knows {', '.join(_DBTYPES)}")
        domains = cfg.get("trusted_domains")
        trusted: tuple[str, ...] = ()
        if isinstance(domains, list):
            trusted = tuple(_php_string(d) for d in domains if not isinstance(d, list | dict))
        elif isinstance(domains, dict):
            trusted = tuple(
                _php_string(d) for d in domains.values() if not isinstance(d, list | dict)
            )
        elif domains is not None:
            problems.append("'trusted_domains' must be an array")
        dbhost, dbport, dbsocket = _split_dbhost(text("dbhost", ""))
        config = cls(
            instanceid=text("instanceid", ""),
            passwordsalt=text("passwordsalt", ""),
            secret=text("secret", ""),
            datadirectory=Path(text("datadirectory", "")),
            dbtype=dbtype,
            dbname=text("dbname", "owncloud"),
            dbhost=dbhost,
            dbport=dbport,
            dbsocket=dbsocket,
            dbuser=text("dbuser", ""),
            dbpassword=text("dbpassword", ""),
            dbtableprefix=text("dbtableprefix", "oc_"),
            version=text("version", ""),
            data_fingerprint=text("data-fingerprint", ""),
            share_folder=text("share_folder", "/"),
            # Session compares with `=== true`, while token_auth_enforced is only tested for truth
            strict_login_enforced=cfg.get("strict_login_enforced") is True,
            token_auth_enforced=_php_truthy(cfg.get("token_auth_enforced")),
            trusted_domains=trusted,
            overwrite_cli_url=(
                None if cfg.get("overwrite.cli.url") is None else text("overwrite.cli.url", "")
            ),
            raw=dict(cfg),
            path=path,
        )
        if problems:
            raise ConfigPhpError(path, 0, 0, "; ".join(problems))
        return config

    def database_url(self) -> str:
        """A SQLAlchemy URL for the oC10 database (pymysql / psycopg 3 / sqlite)."""
        if self.dbtype == "sqlite3":
            # ConnectionFactory keeps the SQLite file in the data directory
            return "sqlite:///" + quote(str(self.datadirectory / f"{self.dbname}.db"), safe="/:")
        if self.dbtype == "oci":
            raise ConfigPhpError(
                self.path, 0, 0,
                "dbtype 'oci' (Oracle) is not supported by ocbridge; move the ownCloud database "
                "to MySQL/MariaDB or PostgreSQL first",
            )
        user = quote(self.dbuser, safe="")
        password = quote(self.dbpassword, safe="")
        userinfo = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = f"[{self.dbhost}]" if ":" in self.dbhost else quote(self.dbhost, safe="")
        port = f":{self.dbport}" if self.dbport is not None else ""
        database = quote(self.dbname, safe="")
        if self.dbtype == "mysql":
            query = "charset=utf8mb4"
            if self.dbsocket:
                query += "&unix_socket=" + quote(self.dbsocket, safe="")
            return f"mysql+pymysql://{userinfo}{host}{port}/{database}?{query}"
        socket = self.dbsocket or (self.dbhost if self.dbhost.startswith("/") else None)
        if socket:
            # libpq takes a socket directory as the host parameter
            return f"postgresql+psycopg://{userinfo}/{database}?host={quote(socket, safe='')}"
        return f"postgresql+psycopg://{userinfo}{host}{port}/{database}"


def _php_truthy(value: object) -> bool:
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)
