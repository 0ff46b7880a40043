"""newstack/ocs/php.py: PHP 7.4's json_encode, XMLWriter, round() and float strings."""

import json

import pytest

from newstack.ocs.php import (
    XmlWriter,
    human_file_size,
    json_encode,
    php_float_str,
    php_gcvt,
    php_is_numeric,
    php_round,
    xml_document,
)

# --- json_encode -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("remote.php/webdav", '"remote.php\\/webdav"'),
        ("<b>x</b>", '"\\u003Cb\\u003Ex\\u003C\\/b\\u003E"'),
        ("café", '"caf\\u00e9"'),
        ("Ünïcödé ß", '"\\u00dcn\\u00efc\\u00f6d\\u00e9 \\u00df"'),
        ("😀", '"\\ud83d\\ude00"'),
        ("日本", '"\\u65e5\\u672c"'),
        ("a\nb\tc\rd\x08e\x0cf", '"a\\nb\\tc\\rd\\be\\ff"'),
        ("\x01\x1f", '"\\u0001\\u001f"'),
        ('say "hi" \\ there', '"say \\"hi\\" \\\\ there"'),
        ("it's & more", '"it\'s & more"'),  # no JSON_HEX_APOS / JSON_HEX_AMP
        ("\x7f", '"\x7f"'),
    ],
)
def test_json_strings_escape_like_php_with_hex_tag(value: str, expected: str) -> None:
    assert json_encode(value, hex_tag=True) == expected


def test_without_hex_tag_angle_brackets_stay() -> None:
    assert json_encode("<a/>") == '"<a\\/>"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-31, "-31"),
        (107902296064, "107902296064"),
        ({}, "[]"),
        ([], "[]"),
        ({"a": {}}, '{"a":[]}'),
        ({0: "x", 1: "y"}, '["x","y"]'),
        ({"0": "x", "1": "y"}, '["x","y"]'),
        ({1: "x"}, '{"1":"x"}'),
        ({"a": [1, {"b": None}]}, '{"a":[1,{"b":null}]}'),
        (("SHA1",), '["SHA1"]'),
    ],
)
def test_json_structure_is_compact_php(value: object, expected: str) -> None:
    assert json_encode(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (50.0, "50"),
        (12.34, "12.34"),
        (0.1 + 0.2, "0.30000000000000004"),
        (0.0001, "0.0001"),
        (0.00001, "1.0e-5"),
        (1e15, "1000000000000000"),
        (1e16, "10000000000000000"),
        (1e17, "1.0e+17"),
        (1.5e20, "1.5e+20"),
        (-2.5e-7, "-2.5e-7"),
    ],
)
def test_json_floats_use_serialize_precision_minus_one(value: float, expected: str) -> None:
    assert json_encode(value) == expected


def test_json_refuses_what_php_cannot_encode() -> None:
    with pytest.raises(ValueError):
        json_encode(float("nan"))
    with pytest.raises(ValueError):
        json_encode("\ud800")
    with pytest.raises(TypeError):
        json_encode(object())


def test_json_output_parses_back() -> None:
    value = {"s": "a/b<c>é😀\n", "n": [1, 2.5, None, True]}
    assert json.loads(json_encode(value, hex_tag=True)) == value


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Zend/tests/double_to_string.phpt (precision=14)
        (290000000000000000.0, "2.9E+17"),
        (290000000000000.0, "2.9E+14"),
        (29000.7123123, "29000.7123123"),
        (239234242.7123123, "239234242.71231"),
        (0.12345678901234567890, "0.12345678901235"),
        (10000000000000.0, "10000000000000"),
        (100000000000000.0, "1.0E+14"),
        (999999999999999.0, "1.0E+15"),
        (0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (5.0, "5"),
        (1.5, "1.5"),
    ],
)
def test_float_to_string_uses_precision_14(value: float, expected: str) -> None:
    assert php_float_str(value) == expected


def test_gcvt_exponent_char_is_the_callers() -> None:
    assert php_gcvt(1e-5, 0, "e") == "1.0e-5"
    assert php_gcvt(1e-5, 14, "E") == "1.0E-5"


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (2.5, 0, 3.0),
        (-2.5, 0, -3.0),
        (3.5, 0, 4.0),
        (1.955, 2, 1.96),  # pre-rounding: 1.955 is 1.95499999… in binary, PHP still gives 1.96
        (5.045, 2, 5.05),
        (5.055, 2, 5.06),
        (1234.5678, 1, 1234.6),
        (1234.5, -2, 1200.0),
        (0.0, 0, 0.0),
        (3333.3333333333335, 0, 3333.0),
    ],
)
def test_round_is_php_half_up_with_pre_rounding(value: float, places: int, expected: float) -> None:
    assert php_round(value, places) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (-1, "?"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KB"),
        (1536, "2 KB"),
        (5 * 1024**3, "5 GB"),
        (1536 * 1024**2, "1.5 GB"),
        (2 * 1024**4, "2 TB"),
        (3 * 1024**5, "3 PB"),
    ],
)
def test_human_file_size(size: int, expected: str) -> None:
    assert human_file_size(size) == expected


@pytest.mark.parametrize(
    ("key", "numeric"),
    [(0, True), ("12", True), ("1.5", True), (" 7", True), ("1e3", True), ("id", False),
     ("", False), ("12a", False), ("7 ", False), (True, False)],
)
def test_is_numeric(key: object, numeric: bool) -> None:
    assert php_is_numeric(key) is numeric


# --- XMLWriter ---------------------------------------------------------------------------------


def test_xml_indents_one_space_per_level_and_tells_null_from_empty() -> None:
    body = xml_document({"ocs": {"a": None, "b": "", "c": {"d": "x", "e": []}, "f": [1, 2]}})
    assert body == (
        b'<?xml version="1.0"?>\n'
        b"<ocs>\n"
        b" <a/>\n"
        b" <b></b>\n"
        b" <c>\n"
        b"  <d>x</d>\n"
        b"  <e/>\n"
        b" </c>\n"
        b" <f>\n"
        b"  <element>1</element>\n"
        b"  <element>2</element>\n"
        b" </f>\n"
        b"</ocs>\n"
    )


def test_xml_scalars_are_php_strings() -> None:
    body = xml_document({"r": {"t": True, "f": False, "i": 31, "x": 12.5, "y": 50.0}})
    assert b"<t>1</t>\n" in body
    assert b"<f></f>\n" in body
    assert b"<i>31</i>\n" in body
    assert b"<x>12.5</x>\n" in body
    assert b"<y>50</y>\n" in body


def test_xml_text_escaping_and_utf8() -> None:
    body = xml_document({"r": {"m": "a<b>&\"c\" it's\r\nné😀"}})
    assert "<m>a&lt;b&gt;&amp;&quot;c&quot; it's&#13;\nné😀</m>".encode() in body


def test_xml_numeric_keys_become_element() -> None:
    body = xml_document({"r": {"5": "x", 7: "y", "1.5": "z"}})
    assert body.count(b"<element>") == 3


def test_xml_at_keys_are_attributes() -> None:
    body = xml_document({"r": {"@id": 3, "@": {"a": "é\"<", "b": True}, "child": "x"}})
    assert b'<r id="3" a="&#xE9;&quot;&lt;" b="1">\n <child>x</child>\n' in body


def test_xml_attribute_after_a_child_is_dropped_like_php() -> None:
    body = xml_document({"r": {"child": "x", "@late": "1"}})
    assert b"late" not in body
    writer = XmlWriter()
    assert writer.write_attribute("x", "1") is False  # nothing open


def test_xml_nested_lists_of_dicts() -> None:
    body = xml_document({"d": [{"id": 1}, {"id": 2}]})
    assert body.endswith(
        b"<d>\n <element>\n  <id>1</id>\n </element>\n <element>\n  <id>2</id>\n </element>\n</d>\n"
    )
